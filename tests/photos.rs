//! End-to-end tests of `mnist predict` and `mnist read` on photo-like pictures of handwriting
//! (issue 17): MNIST test digits drawn as thin pen lines on plain, ruled, squared and recycled
//! paper, in blue ink, shadows and uneven light (`mnist_image::synth::photo`), and blank pages
//! that must be refused. The gates sit just under what the pipeline reads of this fixed set
//! (seed 17, the first pictures of `scripts/photo-accuracy.sh`, which prints the full table of
//! docs/photos.md); they catch a regression, not a target yet met.

mod common;

use common::{mnist, real_mnist_dir, run};
use mnist_data::{find_file, read_images, read_labels, MnistFile};
use mnist_image::synth::photo::{write_photos, Counts, PhotoSample};
use serde_json::Value;

/// Pictures of every condition and blank, seed 17.
fn photos(dir: &std::path::Path, counts: Counts) -> Vec<PhotoSample> {
    let mnist_dir = real_mnist_dir();
    let images = read_images(&find_file(&mnist_dir, MnistFile::TestImages).unwrap()).unwrap();
    let labels = read_labels(&find_file(&mnist_dir, MnistFile::TestLabels).unwrap()).unwrap();
    write_photos(dir, &images.pixels, &labels.0, counts, 17).unwrap()
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
    // Minimum right, of 30 digits and of 10 numbers, per condition (measured: see the module).
    let gates = [
        ("pen", 26, 8),
        ("blue-shadow", 22, 7),
        ("ruled", 29, 6),
        ("squared", 29, 5),
        ("margin", 29, 4),
        ("uneven-light", 29, 5),
        ("pencil", 23, 8),
        ("combined", 23, 3),
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
    // Minimum refused of 8 (measured; blank pages in a shadow and ruled pages are not all
    // refused yet: docs/photos.md).
    for (blank, min) in [
        ("blank-page", 5),
        ("blank-ruled", 1),
        ("blank-squared", 2),
        ("blank-wall", 8),
    ] {
        let got = refused.iter().find(|r| r.0 == blank).unwrap().1;
        assert!(got >= min, "{blank}: {got} of 8 refused, gate {min}");
    }
}
