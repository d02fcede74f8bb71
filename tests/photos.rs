//! End-to-end tests of `mnist predict` and `mnist read` on photo-like pictures of handwriting
//! (issue 17): MNIST test digits drawn as thin pen lines on plain, ruled, squared and recycled
//! paper, in blue ink, shadows and uneven light, out of focus, on a page lying on a table or
//! photographed at a slant (`mnist_image::synth::photo`), and
//! blank pages that must be refused, and one 12-megapixel phone photo. The gates sit one picture
//! under what the pipeline reads of this fixed set with the built-in models (seed 17, the first
//! pictures of `scripts/photo-accuracy.sh`, which prints the full table of docs/photos.md; the
//! slack is for a retrained model): they catch a regression; the targets (99% of digits,
//! 97% of numbers) are measured on the larger set there. Blank pictures are refused before any
//! model runs, so every one must be. How long `predict` takes is `scripts/photo-speed.sh`'s job.

mod common;

use common::{mnist, real_mnist_dir, run};
use mnist_data::{find_file, read_images, read_labels, MnistFile};
use mnist_image::synth::fonts::{font_digits, DRAWINGS_PER_GLYPH, HANDWRITING_FONTS};
use mnist_image::synth::photo::{
    number_photo_of, phone_photo, write_photos, Blank, Condition, Counts, PhotoSample,
};
use mnist_image::synth::{encode, Encoding};
use serde_json::Value;

/// Pictures of every condition and blank, seed 17.
fn photos(dir: &std::path::Path, counts: Counts) -> Vec<PhotoSample> {
    photos_of_seed(dir, counts, 17)
}

fn photos_of_seed(dir: &std::path::Path, counts: Counts, seed: u64) -> Vec<PhotoSample> {
    let mnist_dir = real_mnist_dir();
    let images = read_images(&find_file(&mnist_dir, MnistFile::TestImages).unwrap()).unwrap();
    let labels = read_labels(&find_file(&mnist_dir, MnistFile::TestLabels).unwrap()).unwrap();
    write_photos(dir, None, &images.pixels, &labels.0, 1, counts, seed)
        .unwrap()
        .samples
}

/// Right answers per condition: what `command --json` said about `samples` of that kind.
fn right_by_condition(
    command: &str,
    key: &str,
    samples: &[&PhotoSample],
) -> Vec<(&'static str, usize, usize)> {
    let mut cmd = mnist();
    cmd.arg(command)
        .arg("--json")
        .args(samples.iter().map(|s| &s.file));
    let out = run(&mut cmd);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), samples.len(), "one line per picture");
    let mut tally: Vec<(&'static str, usize, usize)> = Vec::new();
    for (sample, line) in samples.iter().zip(&lines) {
        let said = match &line[key] {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let right = said == sample.answer;
        match tally.iter_mut().find(|t| t.0 == sample.condition) {
            Some(t) => {
                t.1 += usize::from(right);
                t.2 += 1;
            }
            None => tally.push((sample.condition, usize::from(right), 1)),
        }
    }
    tally
}

#[test]
fn photos_of_written_digits_and_numbers_are_read_per_condition() {
    let dir = tempfile::tempdir().unwrap();
    let samples = photos(
        dir.path(),
        Counts {
            digits: 30,
            numbers: 10,
            blanks: 0,
        },
    );
    let digits: Vec<&PhotoSample> = samples
        .iter()
        .filter(|s| s.file.to_string_lossy().contains("-digit-"))
        .collect();
    let numbers: Vec<&PhotoSample> = samples
        .iter()
        .filter(|s| s.file.to_string_lossy().contains("-number-"))
        .collect();
    // Minimum right, of 30 digits and of 10 numbers, per condition: one under what this set
    // reads (every digit and every number).
    let gates = [
        ("pen", 29, 9),
        ("blue-shadow", 29, 9),
        ("ruled", 29, 9),
        ("squared", 29, 9),
        ("margin", 29, 9),
        ("uneven-light", 29, 9),
        ("pencil", 29, 9),
        ("combined", 29, 9),
        ("out-of-focus", 29, 9),
        ("on-desk", 29, 9),
        ("slanted", 29, 9),
    ];
    let digit_tally = right_by_condition("predict", "digit", &digits);
    let number_tally = right_by_condition("read", "number", &numbers);
    eprintln!("digits: {digit_tally:?}\nnumbers: {number_tally:?}");
    for (condition, min_digits, min_numbers) in gates {
        let d = digit_tally.iter().find(|t| t.0 == condition).unwrap();
        let n = number_tally.iter().find(|t| t.0 == condition).unwrap();
        assert!(
            d.1 >= min_digits,
            "{condition}: {} of {} digits right, gate {min_digits}",
            d.1,
            d.2
        );
        assert!(
            n.1 >= min_numbers,
            "{condition}: {} of {} numbers right, gate {min_numbers}",
            n.1,
            n.2
        );
    }
}

#[test]
fn photos_of_digits_written_in_handwriting_fonts_are_read() {
    // The same pictures with the digits of sixteen handwriting fonts (`photos write --fonts`,
    // seed 17): legible writing, not MNIST's. What the models still misread there are 1s
    // written with a flag, which MNIST's writers did not make and the models take for 7s
    // (docs/photos.md); the gates sit one picture under this set's reading, apart for the 1s.
    let dir = tempfile::tempdir().unwrap();
    let (pixels, labels) = font_digits(DRAWINGS_PER_GLYPH, 17);
    let counts = Counts {
        digits: 20,
        numbers: 0,
        blanks: 0,
    };
    let samples = write_photos(
        dir.path(),
        None,
        &pixels,
        &labels,
        HANDWRITING_FONTS.len(),
        counts,
        17,
    )
    .unwrap()
    .samples;
    let is_one = |s: &&PhotoSample| s.answer.as_deref() == Some("1");
    let ones: Vec<&PhotoSample> = samples.iter().filter(is_one).collect();
    let others: Vec<&PhotoSample> = samples.iter().filter(|s| !is_one(s)).collect();
    let right = |tally: Vec<(&str, usize, usize)>| {
        eprintln!("{tally:?}");
        tally.iter().fold((0, 0), |(r, n), t| (r + t.1, n + t.2))
    };
    let (others_right, others_read) = right(right_by_condition("predict", "digit", &others));
    let (ones_right, ones_read) = right(right_by_condition("predict", "digit", &ones));
    assert_eq!(others_read + ones_read, 220);
    assert!(
        others_right + 1 >= others_read,
        "{others_right} of {others_read} digits other than 1 right"
    );
    assert!(
        ones_right >= ONES_GATE,
        "{ones_right} of {ones_read} 1s right, gate {ONES_GATE}"
    );
}

/// 1s right of those `photos_of_digits_written_in_handwriting_fonts_are_read` draws: one under
/// what the built-in models read.
const ONES_GATE: usize = 9;

#[test]
fn blank_photos_are_refused_with_one_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let samples = photos(
        dir.path(),
        Counts {
            digits: 0,
            numbers: 0,
            blanks: 8,
        },
    );
    let mut refused: Vec<(&str, usize)> = Vec::new();
    for sample in &samples {
        let out = run(mnist().arg("predict").arg(&sample.file));
        let was_refused = out.code == Some(1);
        if was_refused {
            let line = out
                .stderr
                .lines()
                .find(|l| l.starts_with("error: "))
                .unwrap();
            assert!(line.contains("no ink found"), "{line}");
            assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        }
        match refused.iter_mut().find(|r| r.0 == sample.condition) {
            Some(r) => r.1 += usize::from(was_refused),
            None => refused.push((sample.condition, usize::from(was_refused))),
        }
    }
    eprintln!("refused of 8: {refused:?}");
    for blank in Blank::ALL.map(Blank::name) {
        let got = refused.iter().find(|r| r.0 == blank).unwrap().1;
        assert_eq!(got, 8, "{blank}: {got} of 8 refused");
    }
}

#[test]
fn a_larger_set_of_blank_pages_is_refused() {
    // The 700 blank pictures of `scripts/photo-accuracy.sh 0 0 100 5` (docs/photos.md), read by
    // the library as `mnist predict` reads them (no model runs before a picture is refused):
    // shadows across plain, ruled, squared and blurred pages are what the reader most often
    // mistook for writing, the last of them a wedge of false ink beside a shadow's edge on a
    // plain and on a blurred page; the outline of a page on a table, and the table's grain,
    // were read as digits before the table was painted over; the converging lines of a page
    // photographed at a slant, before it was seen from above, and then a stub of a rule in a
    // corner of that view.
    let dir = tempfile::tempdir().unwrap();
    let counts = Counts {
        digits: 0,
        numbers: 0,
        blanks: 100,
    };
    let samples = photos_of_seed(dir.path(), counts, 5);
    assert_eq!(samples.len(), 700);
    let read: Vec<String> = samples
        .iter()
        .filter(|s| {
            let image = mnist_image::read_image(&s.file).unwrap();
            mnist_image::digit_in_image(&image).is_some()
        })
        .map(|s| s.file.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        read.is_empty(),
        "{} of 600 blank pictures read: {read:?}",
        read.len()
    );
}

#[test]
fn a_12_megapixel_phone_photo_is_read() {
    // The picture scripts/photo-speed.sh times: combined conditions, seed 1 (an 8).
    let mnist_dir = real_mnist_dir();
    let images = read_images(&find_file(&mnist_dir, MnistFile::TestImages).unwrap()).unwrap();
    let labels = read_labels(&find_file(&mnist_dir, MnistFile::TestLabels).unwrap()).unwrap();
    let (photo, label) = phone_photo(&images.pixels, &labels.0, Condition::Combined, 1);
    assert_eq!((photo.width(), photo.height()), (4000, 3000));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("phone.jpg");
    std::fs::write(&path, encode(&photo, Encoding::Jpeg(90))).unwrap();
    let out = run(mnist().arg("predict").arg("--json").arg(&path)).ok();
    let line: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(line["digit"].as_u64(), Some(label as u64), "{line}");
}

#[test]
fn the_docs_photo_is_what_its_command_makes_and_is_read_as_they_say() {
    // docs/photos.md: `photos example combined 4 docs/photo-3457.jpg 17`.
    let mnist_dir = real_mnist_dir();
    let images = read_images(&find_file(&mnist_dir, MnistFile::TestImages).unwrap()).unwrap();
    let labels = read_labels(&find_file(&mnist_dir, MnistFile::TestLabels).unwrap()).unwrap();
    let (photo, number) = number_photo_of(&images.pixels, &labels.0, Condition::Combined, 4, 17);
    assert_eq!(number, "3457");
    let path = common::repo().join("docs/photo-3457.jpg");
    assert!(
        std::fs::read(&path).unwrap() == encode(&photo, Encoding::Jpeg(80)),
        "docs/photo-3457.jpg is not what the command in docs/photos.md makes"
    );
    let out = run(mnist().arg("read").arg(&path)).ok();
    assert!(
        out.starts_with(&format!("{}: 3457 ", path.display())),
        "{out}"
    );
}

/// The built-in reader reads a digit written with a thin pen line (redrawn at MNIST's width)
/// with `weights/convnet.safetensors` and the two pen models together (the mean of their
/// probabilities, each pen model's counted twice: `PEN_MODEL_WEIGHT` in crates/cli/images.rs)
/// and any other digit with the convnet alone; `redrawn` in the JSON says which.
#[test]
fn pen_lines_are_read_by_all_three_models_and_other_digits_by_the_convnet() {
    let mnist_dir = real_mnist_dir();
    let images = read_images(&find_file(&mnist_dir, MnistFile::TestImages).unwrap()).unwrap();
    let labels = read_labels(&find_file(&mnist_dir, MnistFile::TestLabels).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (photo, _) = phone_photo(&images.pixels, &labels.0, Condition::Pen, 1);
    let pen_line = dir.path().join("pen.jpg");
    std::fs::write(&pen_line, encode(&photo, Encoding::Jpeg(90))).unwrap();
    let mnist_like = common::repo().join("tests/pictures/00001-digit-6.jpg");
    // One picture per call, so that every model reads a batch of one whatever it is given.
    let predict = |picture: &std::path::Path, weights: Option<&str>| -> Value {
        let mut cmd = mnist();
        cmd.args(["predict", "--json", "--device", "cpu"]);
        if let Some(file) = weights {
            cmd.arg("--weights").arg(common::repo().join(file));
        }
        serde_json::from_str(run(cmd.arg(picture)).ok().trim()).unwrap()
    };
    let probabilities = |answer: &Value| -> Vec<f64> {
        let list = answer["probabilities"].as_array().expect("probabilities");
        list.iter().map(|p| p.as_f64().unwrap()).collect()
    };
    for (picture, redrawn) in [(&pen_line, true), (&mnist_like, false)] {
        let answer = predict(picture, None);
        assert_eq!(answer["redrawn"], redrawn, "{answer}");
        let convnet = probabilities(&predict(picture, Some("weights/convnet.safetensors")));
        let pen = probabilities(&predict(picture, Some("weights/pen.safetensors")));
        let pen_7 = probabilities(&predict(picture, Some("weights/pen-7.safetensors")));
        assert_ne!(convnet, pen);
        assert_ne!(pen, pen_7);
        let expected: Vec<f64> = if redrawn {
            (0..10)
                .map(|k| (convnet[k] + 2.0 * pen[k] + 2.0 * pen_7[k]) / 5.0)
                .collect()
        } else {
            convnet
        };
        // The mean is taken in f32: within a rounding of it.
        assert_eq!(probabilities(&answer).len(), 10, "{answer}");
        for (got, want) in probabilities(&answer).iter().zip(&expected) {
            assert!((got - want).abs() <= 1e-6, "{answer}: {expected:?}");
        }
    }
}

/// Photos that an earlier reader misread, each named `SEED-INDEX-CONDITION-number-N` after where
/// it comes from (`photos write 0 400 0 DIR SEED`, picture INDEX) and what it shows: a number
/// on dark ruled paper with a lit corner, whose shade was taken for ink beside the digits
/// (read as `4`), and one with a faint, broken red margin line, a stretch of which was read as
/// a `0` (`0793`); and two numbers written across a rule, where the band of their strokes
/// beside the rule was taken for a second line there, so the strokes along the rule were lost
/// (`554907`, `641223`). The last is a single digit, a lone pen line on a page half in shadow,
/// that was refused as "no ink found": picture 730 of `photos write 100 0 0 DIR 17 ORIGINALS
/// UNRULED`, from UNRULED (the combined condition without its rules). The blank pages, named
/// `SEED-INDEX-blank-KIND`, must be refused: a squared page at a slant (`photos write 0 0 60 DIR
/// 23`) whose faint margin line, fitted a degree astray beside a column of the grid, hid the
/// slant, and whose columns were read as `81111111111111118`; and a page on a table (`photos
/// write 0 100 100 DIR 41`) turned so that its edge leaves the picture, where the sliver of
/// table beside it, too narrow to measure along most of the side, was read as a `5`.
#[test]
fn photos_once_misread_are_read_right() {
    let files = common::files_in(&common::repo().join("tests/regressions"));
    assert_eq!(files.len(), 7, "{files:?}");
    let read = run(mnist().arg("read").arg("--json").args(&files));
    // A blank page refused makes the exit status 1.
    assert_eq!(read.code, Some(1), "{}", read.stderr);
    let out = read.stdout;
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), files.len(), "{out}");
    for (file, line) in files.iter().zip(&lines) {
        let name = file.file_stem().unwrap().to_str().unwrap();
        if name.contains("-blank-") {
            let error = line["error"].as_str().unwrap_or_default();
            assert!(error.contains("no ink found"), "{name}: {line}");
            continue;
        }
        let number = name.rsplit("-number-").next().unwrap();
        assert_eq!(line["number"].as_str(), Some(number), "{name}: {line}");
    }
}
