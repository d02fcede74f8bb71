//! The photo-like test pictures of issue 17 (`mnist_image::synth::photo`), and their score.
//!
//! `photos write DIGITS NUMBERS BLANKS OUT_DIR [SEED [ORIGINALS_DIR [UNRULED_DIR]]]` writes, for every
//! condition, single digits and numbers made from MNIST test digits drawn as pen lines, and
//! blank pages that must be refused (counts are per condition; MNIST from $MNIST_DIR or
//! ./data/mnist). With ORIGINALS_DIR it also writes there, under the same name as PNG, each
//! picture's MNIST digits as they are (`original_picture`): the reference for the score;
//! and ORIGINALS_DIR/mnist-indices.tsv names, for each picture, the MNIST test digits it
//! shows (the file's stem, a tab, their indices in MNIST's test files, comma-separated).
//! With `--fonts` the digits are not MNIST's but the sixteen handwriting fonts' of
//! `mnist_image::synth::fonts` (`DRAWINGS_PER_GLYPH` drawings of each glyph, from SEED), a
//! number's digits all from one font, and the indices are into that set. With UNRULED_DIR it
//! also writes there, under the same name, each picture whose page has printed lines (rules, a
//! grid, a margin line) without them, and all else the same.
//!
//! `photos score FILE.jsonl...` reads what `mnist predict --json` and `mnist read --json` said
//! about such pictures and prints the accuracy per condition as a Markdown table: a digit or a
//! number counts when it is exactly the one in the file name, a blank picture when it was
//! refused. Lines from a file whose name holds "originals" are what was said about the
//! original pictures; with them the table sets each condition beside its originals' score and
//! counts the photos read right of those whose originals were. The last row counts all
//! conditions together. Lines from a file whose name holds "unruled" are what was said about
//! the pictures without their printed lines; with them a second table sets, for the pictures
//! that have such lines, the score with them beside the score without them. `scripts/photo-accuracy.sh` runs
//! both.
//!
//! `photos big CONDITION OUT.jpg [SEED]` writes one 12-megapixel (4000x3000) JPEG: a
//! single-digit picture of CONDITION enlarged the way a phone's camera would have taken it
//! (`phone_photo`), for `scripts/photo-speed.sh`. It prints the digit written.
//!
//! `photos example CONDITION DIGITS OUT.jpg [SEED]` writes one picture of a number of DIGITS
//! digits written under CONDITION (`number_photo_of`), as JPEG quality 80, and prints the
//! number: the photo docs/photos.md and the README show.
//!
//! `photos fidelity` measures `pen_fidelity` over MNIST's 10,000 test digits and prints its
//! percentiles and how many digits, of each label, fall under `MIN_PEN_FIDELITY`: the ones the
//! generators pass over.
//!
//! `photos blind OUT_DIR ORIGINALS_DIR READ.jsonl...` is a blind test of the pictures
//! themselves: can a person read the pen lines the models misread? It takes every digit that
//! `mnist read --json` or `mnist predict --json` (READ.jsonl) read as another digit (a number
//! read with as many digits as were written, a wrong one in place), adds as many digits drawn
//! at random from the rest of the same pictures, shuffles them, and writes OUT_DIR/sheet.png:
//! each digit's pen line alone (`pen_line_picture`), in rows of ten, with no label and no
//! reading; and OUT_DIR/key.tsv, which says which is which. A person writes what they read,
//! one answer per cell in reading order, `?` where they cannot tell, into a text file, and
//! `photos blind-score OUT_DIR/key.tsv ANSWERS.txt` counts, for the misread digits and for the
//! others, how many they read right, could not tell, and read wrong.
//!
//! `photos small MIN_HEIGHT MAX_HEIGHT OUT_DIR SEED READ.jsonl...` makes small pictures of such
//! pictures, as a photo taken from afar or a thumbnail shows them: each number that
//! `mnist read --json` (READ.jsonl) read right is cut out with a margin of 15-50% of its height
//! on every side, each blank page is cut at random (a tenth to two fifths of its height, one
//! to four times as wide), and each cut is shrunk (Lanczos) to a height drawn from
//! MIN_HEIGHT-MAX_HEIGHT px, never enlarged. Each picture's cut depends only on SEED and the
//! picture's number in its set, so builds that read different pictures right are measured on
//! the same cuts of the rest. They keep their names, as PNG, so `photos score` scores what
//! `mnist read --json` says of them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use mnist_data::IMAGE_PIXELS;
use mnist_data::{data_dir, read_images, read_labels, MnistFile};
use mnist_image::synth::fonts::{font_digits, DRAWINGS_PER_GLYPH, HANDWRITING_FONTS};
use mnist_image::synth::photo::{
    number_photo_of, original_picture, pen_fidelity, pen_line_picture, phone_photo, write_photos,
    Blank, Condition, Counts, MIN_PEN_FIDELITY,
};
use mnist_image::synth::{encode, Encoding};

type Error = Box<dyn std::error::Error>;

const USAGE: &str = "usage: photos write [--fonts] DIGITS NUMBERS BLANKS OUT_DIR [SEED [ORIGINALS_DIR [UNRULED_DIR]]] | photos score FILE.jsonl... | photos big CONDITION OUT.jpg [SEED] | photos example CONDITION DIGITS OUT.jpg [SEED] | photos fidelity | photos blind OUT_DIR ORIGINALS_DIR READ.jsonl... | photos blind-score KEY.tsv ANSWERS.txt | photos small MIN_HEIGHT MAX_HEIGHT OUT_DIR SEED READ.jsonl...";

/// Runs the subcommand; an error is one line, `error: ...`, and exit status 1.
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("write") => write(&args[1..]),
        Some("score") => score(&args[1..]),
        Some("big") => big(&args[1..]),
        Some("example") => example(&args[1..]),
        Some("fidelity") => fidelity(),
        Some("blind") => blind(&args[1..]),
        Some("blind-score") => blind_score(&args[1..]),
        Some("small") => small(&args[1..]),
        _ => Err(USAGE.into()),
    }
}

fn write(args: &[String]) -> Result<(), Error> {
    let (fonts, args) = match args.split_first() {
        Some((flag, rest)) if flag == "--fonts" => (true, rest),
        _ => (false, args),
    };
    let [digits, numbers, blanks, out, rest @ ..] = args else {
        return Err(USAGE.into());
    };
    let seed: u64 = rest.first().map(|s| s.parse()).transpose()?.unwrap_or(1);
    let originals = rest.get(1).map(PathBuf::from);
    let unruled = rest.get(2).map(PathBuf::from);
    let (images, labels, hands) = if fonts {
        let (images, labels) = font_digits(DRAWINGS_PER_GLYPH, seed);
        (images, labels, HANDWRITING_FONTS.len())
    } else {
        let (images, labels) = test_set()?;
        (images, labels, 1)
    };
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out)?;
    let counts = Counts {
        digits: digits.parse()?,
        numbers: numbers.parse()?,
        blanks: blanks.parse()?,
    };
    if let Some(dir) = &unruled {
        std::fs::create_dir_all(dir)?;
    }
    let set = write_photos(
        &out,
        unruled.as_deref(),
        &images,
        &labels,
        hands,
        counts,
        seed,
    )?;
    eprintln!(
        "wrote {} pictures to {} (passed over {} {} digits whose pen line does not stand for them)",
        set.samples.len(),
        out.display(),
        set.skipped,
        if fonts { "font" } else { "MNIST" }
    );
    if let Some(dir) = originals {
        std::fs::create_dir_all(&dir)?;
        let indices: String = set
            .samples
            .iter()
            .filter(|s| !s.mnist.is_empty())
            .map(|s| {
                let stem = s.file.file_stem().unwrap_or_default().to_string_lossy();
                let list: Vec<String> = s.mnist.iter().map(usize::to_string).collect();
                format!("{stem}\t{}\n", list.join(","))
            })
            .collect();
        std::fs::write(dir.join(INDICES_FILE), indices)?;
        // A stream of its own, so the photos are the same with or without their originals.
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for sample in set.samples.iter().filter(|s| !s.mnist.is_empty()) {
            let digits: Vec<&[u8]> = sample
                .mnist
                .iter()
                .map(|&k| &images[k * IMAGE_PIXELS..][..IMAGE_PIXELS])
                .collect();
            let stem = sample.file.file_stem().unwrap_or_default();
            let file = dir.join(stem).with_extension("png");
            std::fs::write(
                file,
                encode(&original_picture(&digits, &mut rng), Encoding::Png),
            )?;
        }
    }
    Ok(())
}

fn fidelity() -> Result<(), Error> {
    let (images, labels) = test_set()?;
    let scores: Vec<f32> = images
        .chunks_exact(IMAGE_PIXELS)
        .map(pen_fidelity)
        .collect();
    let mut sorted = scores.clone();
    sorted.sort_by(f32::total_cmp);
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    println!(
        "pen fidelity over {} MNIST test digits: 1% {:.3}, 5% {:.3}, 10% {:.3}, median {:.3}, 90% {:.3}",
        sorted.len(),
        at(0.01),
        at(0.05),
        at(0.1),
        at(0.5),
        at(0.9)
    );
    for cut in [0.75, 0.8, MIN_PEN_FIDELITY, 0.85, 0.9] {
        let mut under = [0usize; 10];
        for (score, &label) in scores.iter().zip(&labels) {
            if *score < cut {
                under[label as usize] += 1;
            }
        }
        let total: usize = under.iter().sum();
        println!(
            "under {cut}{}: {total} ({:.1}%), by label 0-9: {under:?}",
            if cut == MIN_PEN_FIDELITY {
                " (the generators' cut)"
            } else {
                ""
            },
            100.0 * total as f64 / scores.len() as f64
        );
    }
    Ok(())
}

/// Where `photos write` names each picture's MNIST test digits, in ORIGINALS_DIR.
const INDICES_FILE: &str = "mnist-indices.tsv";

/// Side and pen width (pixels) of each pen line on the blind sheet: 4 times MNIST's side, the
/// pen about as wide against the digit as in the photos.
const BLIND_SIDE: u32 = 112;
const BLIND_PEN: f32 = 4.0;
/// Cells per row of the blind sheet, and the paper between cells.
const BLIND_COLUMNS: usize = 10;
const BLIND_GAP: u32 = 12;
const FRAME: image::Luma<u8> = image::Luma([200]);

/// The two groups of the blind test.
const MISREAD: &str = "misread";
const OTHERS: &str = "others";

/// The digits of the pictures named in `indices_file` (stem -> MNIST test indices).
fn read_indices(indices_file: &Path) -> Result<BTreeMap<String, Vec<usize>>, Error> {
    let text = std::fs::read_to_string(indices_file).map_err(|e| {
        format!(
            "{}: {e} (written by photos write with ORIGINALS_DIR)",
            indices_file.display()
        )
    })?;
    text.lines()
        .map(|line| {
            let (stem, list) = line.split_once('\t').ok_or_else(|| {
                format!("{}: not STEM<TAB>INDICES: {line}", indices_file.display())
            })?;
            let indices = list
                .split(',')
                .map(|k| k.parse::<usize>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{}: {e}: {line}", indices_file.display()))?;
            Ok((stem.to_string(), indices))
        })
        .collect()
}

fn blind(args: &[String]) -> Result<(), Error> {
    let [out, originals, reads @ ..] = args else {
        return Err(USAGE.into());
    };
    if reads.is_empty() {
        return Err(USAGE.into());
    }
    let indices_file = Path::new(originals).join(INDICES_FILE);
    let indices = read_indices(&indices_file)?;
    let (images, labels) = test_set()?;
    if let Some(k) = indices.values().flatten().find(|&&k| k >= labels.len()) {
        return Err(format!(
            "{}: index {k} is past MNIST's {} test digits",
            indices_file.display(),
            labels.len()
        )
        .into());
    }
    let mut misread = std::collections::BTreeSet::new();
    for file in reads {
        for reading in readings(file)? {
            let said = reading.said.unwrap_or_default();
            let Some(digits) = indices.get(&reading.stem) else {
                continue;
            };
            let written: String = digits
                .iter()
                .map(|&k| char::from(b'0' + labels[k]))
                .collect();
            if said.len() == written.len() {
                for ((w, s), &k) in written.chars().zip(said.chars()).zip(digits) {
                    if w != s {
                        misread.insert(k);
                    }
                }
            }
        }
    }
    if misread.is_empty() {
        return Err(format!("no digit in {} was read as another", reads.join(", ")).into());
    }
    let mut others: Vec<usize> = indices
        .values()
        .flatten()
        .copied()
        .filter(|k| !misread.contains(k))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    // A fixed stream: the same readings give the same sheet.
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    others.shuffle(&mut rng);
    others.truncate(misread.len());
    let mut cells: Vec<(usize, &str)> = misread
        .iter()
        .map(|&k| (k, MISREAD))
        .chain(others.iter().map(|&k| (k, OTHERS)))
        .collect();
    cells.shuffle(&mut rng);
    let pitch = BLIND_SIDE + BLIND_GAP;
    let rows = cells.len().div_ceil(BLIND_COLUMNS) as u32;
    let mut sheet = image::GrayImage::from_pixel(
        BLIND_COLUMNS as u32 * pitch + BLIND_GAP,
        rows * pitch + BLIND_GAP,
        image::Luma([255]),
    );
    let mut key = String::from("cell\trow\tcolumn\tmnist_index\tlabel\tgroup\n");
    for (i, &(k, group)) in cells.iter().enumerate() {
        let (row, column) = (i / BLIND_COLUMNS, i % BLIND_COLUMNS);
        let line = pen_line_picture(
            &images[k * IMAGE_PIXELS..][..IMAGE_PIXELS],
            BLIND_SIDE,
            BLIND_PEN,
        );
        let (x, y) = (
            BLIND_GAP + column as u32 * pitch,
            BLIND_GAP + row as u32 * pitch,
        );
        image::imageops::replace(&mut sheet, &line, x.into(), y.into());
        // A light frame 4 px around each cell, so that no cell's edge is taken for a stroke.
        let (x0, y0, x1, y1) = (x - 4, y - 4, x + BLIND_SIDE + 3, y + BLIND_SIDE + 3);
        for t in x0..=x1 {
            sheet.put_pixel(t, y0, FRAME);
            sheet.put_pixel(t, y1, FRAME);
        }
        for t in y0..=y1 {
            sheet.put_pixel(x0, t, FRAME);
            sheet.put_pixel(x1, t, FRAME);
        }
        key += &format!(
            "{}\t{}\t{}\t{k}\t{}\t{group}\n",
            i + 1,
            row + 1,
            column + 1,
            labels[k]
        );
    }
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out)?;
    sheet.save(out.join("sheet.png"))?;
    std::fs::write(out.join("key.tsv"), key)?;
    println!(
        "{} pen lines ({} misread, {} others) in {} rows of {BLIND_COLUMNS}: {}",
        cells.len(),
        misread.len(),
        others.len(),
        rows,
        out.join("sheet.png").display()
    );
    Ok(())
}

fn blind_score(args: &[String]) -> Result<(), Error> {
    let [key, answers] = args else {
        return Err(USAGE.into());
    };
    let key_text = std::fs::read_to_string(key).map_err(|e| format!("{key}: {e}"))?;
    let answer_text = std::fs::read_to_string(answers).map_err(|e| format!("{answers}: {e}"))?;
    let answers: Vec<&str> = answer_text.split_whitespace().collect();
    let cells: Vec<Vec<&str>> = key_text
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect())
        .collect();
    if answers.len() != cells.len() {
        return Err(format!(
            "{}: {} answers for the {} cells of {key}",
            args[1],
            answers.len(),
            cells.len()
        )
        .into());
    }
    // group -> (right, cannot tell, wrong)
    let mut counts: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for (cell, &answer) in cells.iter().zip(&answers) {
        let [_, _, _, _, label, group] = cell[..] else {
            return Err(format!("{key}: not a key line: {}", cell.join("\t")).into());
        };
        let c = counts.entry(group).or_default();
        match answer {
            "?" => c.1 += 1,
            a if a == label => c.0 += 1,
            a if a.len() == 1 && a.chars().all(|ch| ch.is_ascii_digit()) => c.2 += 1,
            a => return Err(format!("{}: {a:?} is not a digit or ?", args[1]).into()),
        }
    }
    println!("| pen lines | read right | could not tell | read as another digit |");
    println!("| --- | --- | --- | --- |");
    for (group, (right, unsure, wrong)) in counts {
        let n = right + unsure + wrong;
        let pc = |v: usize| format!("{v} ({:.0}%)", 100.0 * v as f64 / n as f64);
        let group = match group {
            MISREAD => "read by the models as another digit",
            OTHERS => "the others, drawn at random",
            other => other,
        };
        println!(
            "| {group} ({n}) | {} | {} | {} |",
            pc(right),
            pc(unsure),
            pc(wrong)
        );
    }
    Ok(())
}

/// `photos small`: the small pictures of the numbers read right and of the blank pages.
fn small(args: &[String]) -> Result<(), Error> {
    use image::imageops::FilterType;
    use rand::Rng;
    let [min_height, max_height, out, seed, files @ ..] = args else {
        return Err(USAGE.into());
    };
    let number = |name: &str, value: &str| -> Result<u32, Error> {
        value
            .parse()
            .map_err(|e| format!("{name} {value:?}: {e}").into())
    };
    let min_height = number("MIN_HEIGHT", min_height)?;
    let max_height = number("MAX_HEIGHT", max_height)?;
    if files.is_empty() || min_height == 0 || min_height > max_height {
        return Err(USAGE.into());
    }
    let seed = number("SEED", seed)?;
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out)?;
    let mut written = 0;
    for file in files {
        for reading in readings(file)? {
            let number = reading.stem.split_once("-number-").map(|(_, n)| n);
            let blank = reading.stem.contains("-blank-");
            if !(blank || number.is_some() && number == reading.said.as_deref()) {
                continue;
            }
            let index: u64 = reading
                .stem
                .split('-')
                .next()
                .and_then(|n| n.parse().ok())
                .ok_or(format!(
                    "{}: not a picture of `photos write` (its name starts with its number)",
                    reading.file
                ))?;
            let mut rng = ChaCha8Rng::seed_from_u64(seed.into());
            rng.set_stream(index);
            let image =
                mnist_image::read_image(Path::new(&reading.file)).map_err(|e| e.to_string())?;
            let (w, h) = (image.width(), image.height());
            let digits = if blank {
                None
            } else {
                reading.boxes.iter().copied().reduce(|a, b| {
                    let (x, y) = (a[0].min(b[0]), a[1].min(b[1]));
                    [
                        x,
                        y,
                        (a[0] + a[2]).max(b[0] + b[2]) - x,
                        (a[1] + a[3]).max(b[1] + b[3]) - y,
                    ]
                })
            };
            let (x, y, cut_w, cut_h) = match digits {
                Some([x, y, bw, bh]) => {
                    let margin = (bh as f64 * rng.random_range(0.15..0.5)) as u32;
                    let (x0, y0) = (x.saturating_sub(margin), y.saturating_sub(margin));
                    let (x1, y1) = ((x + bw + margin).min(w), (y + bh + margin).min(h));
                    (x0, y0, x1 - x0, y1 - y0)
                }
                None => {
                    let cut_h = ((h as f64 * rng.random_range(0.1..0.4)) as u32).max(1);
                    let cut_w = ((cut_h as f64 * rng.random_range(1.0..4.0)) as u32).min(w);
                    let (x, y) = (
                        rng.random_range(0..=w - cut_w),
                        rng.random_range(0..=h - cut_h),
                    );
                    (x, y, cut_w, cut_h)
                }
            };
            let cut = image.crop_imm(x, y, cut_w, cut_h);
            let height = rng.random_range(min_height..=max_height);
            let cut = if height < cut_h {
                let width = ((cut_w as f64 * height as f64 / cut_h as f64).round() as u32).max(1);
                cut.resize_exact(width, height, FilterType::Lanczos3)
            } else {
                cut
            };
            cut.save(out.join(&reading.stem).with_extension("png"))?;
            written += 1;
        }
    }
    eprintln!("wrote {written} small pictures to {}", out.display());
    Ok(())
}

/// MNIST's test images and labels, from $MNIST_DIR or ./data/mnist.
fn test_set() -> Result<(Vec<u8>, Vec<u8>), Error> {
    let dir = data_dir(None);
    let find = |file| {
        mnist_data::find_file(&dir, file).ok_or(format!(
            "{}: MNIST test files not found; set MNIST_DIR",
            dir.display()
        ))
    };
    let images = read_images(&find(MnistFile::TestImages)?)?;
    let labels = read_labels(&find(MnistFile::TestLabels)?)?;
    Ok((images.pixels, labels.0))
}

fn condition(name: &str) -> Result<Condition, Error> {
    Condition::ALL
        .into_iter()
        .find(|c| c.name() == name)
        .ok_or_else(|| format!("{name}: not a condition").into())
}

/// One picture of a number of a condition, saved as JPEG quality 80.
fn example(args: &[String]) -> Result<(), Error> {
    let [name, count, out, rest @ ..] = args else {
        return Err(USAGE.into());
    };
    let seed: u64 = rest.first().map(|s| s.parse()).transpose()?.unwrap_or(1);
    let (images, labels) = test_set()?;
    let (photo, number) = number_photo_of(&images, &labels, condition(name)?, count.parse()?, seed);
    std::fs::write(out, encode(&photo, Encoding::Jpeg(80)))?;
    println!("{number}");
    Ok(())
}

/// One single-digit picture of a condition as a 12-megapixel phone photo
/// ([`phone_photo`]), saved as JPEG quality 90.
fn big(args: &[String]) -> Result<(), Error> {
    let [name, out, rest @ ..] = args else {
        return Err(USAGE.into());
    };
    let condition = condition(name)?;
    let seed: u64 = rest.first().map(|s| s.parse()).transpose()?.unwrap_or(1);
    let (images, labels) = test_set()?;
    let (photo, label) = phone_photo(&images, &labels, condition, seed);
    std::fs::write(out, encode(&photo, Encoding::Jpeg(90)))?;
    println!("{label}");
    Ok(())
}

/// Right and total per (condition, kind).
#[derive(Default)]
struct Tally(BTreeMap<(String, &'static str), (usize, usize)>);

impl Tally {
    fn add(&mut self, condition: &str, kind: &'static str, right: bool) {
        let e = self.0.entry((condition.to_string(), kind)).or_default();
        e.0 += usize::from(right);
        e.1 += 1;
    }

    fn cell(&self, condition: &str, kind: &'static str) -> String {
        match self.0.get(&(condition.to_string(), kind)) {
            Some(&(right, n)) => format!("{right}/{n} ({:.1}%)", 100.0 * right as f64 / n as f64),
            None => "-".into(),
        }
    }

    /// `condition`'s cells of `kinds`, each closed by a Markdown table's `|`.
    fn cells(&self, condition: &str, kinds: &[&'static str]) -> String {
        kinds
            .iter()
            .map(|kind| format!(" {} |", self.cell(condition, kind)))
            .collect()
    }
}

/// The name of the score table's last row, which counts every condition's pictures.
const ALL_CONDITIONS: &str = "all conditions";

/// Whether a picture was read right, its original picture (`photos write`'s ORIGINALS_DIR)
/// and its twin without printed lines (UNRULED_DIR) when they were read too.
#[derive(Default)]
struct Verdict {
    photo: Option<bool>,
    original: Option<bool>,
    unruled: Option<bool>,
}

/// One line of what `mnist predict --json` or `mnist read --json` said about a picture.
struct Reading {
    /// The picture's path, as the line names it.
    file: String,
    /// The boxes (x, y, width, height) of the digits of a number read, in the picture's pixels.
    boxes: Vec<[u32; 4]>,
    /// The picture's file name without its extension.
    stem: String,
    /// The digit or the number read; `None` when the picture was refused.
    said: Option<String>,
    /// Whether the line is an error, as a refused picture's is.
    refused: bool,
}

/// Every line of a JSON-lines `file` written by `mnist predict --json` or `mnist read --json`.
fn readings(file: &str) -> Result<Vec<Reading>, Error> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
    text.lines()
        .map(|line| {
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| format!("{file}: {e}: {line}"))?;
            let name = v["file"]
                .as_str()
                .ok_or(format!("{file}: no \"file\" in {line}"))?;
            let stem = Path::new(name)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let said = v
                .get("digit")
                .map(|d| d.to_string())
                .or_else(|| v["number"].as_str().map(str::to_string));
            let boxes = v["digits"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| {
                    let b: Vec<u32> = d["box"]
                        .as_array()?
                        .iter()
                        .filter_map(|n| n.as_u64().map(|n| n as u32))
                        .collect();
                    <[u32; 4]>::try_from(b).ok()
                })
                .collect();
            Ok(Reading {
                file: name.to_string(),
                boxes,
                stem,
                said,
                refused: v["error"].is_string(),
            })
        })
        .collect()
}

fn score(files: &[String]) -> Result<(), Error> {
    let mut tally = Tally::default();
    // (condition, "digit" or "number", picture's stem) -> what was said of it and its original.
    let mut verdicts: BTreeMap<(String, &'static str, String), Verdict> = BTreeMap::new();
    for file in files {
        // The script names each file for what it holds: originals-read.jsonl, blank-read.jsonl.
        let named = Path::new(file)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let original = named.contains("originals");
        let unruled = named.contains("unruled");
        for reading in readings(file)? {
            let stem = reading.stem.as_str();
            // NNNNN-CONDITION-digit-L, NNNNN-CONDITION-number-DIGITS or NNNNN-BLANK.
            let rest = stem.split_once('-').map(|(_, r)| r).unwrap_or(stem);
            let said = reading.said;
            let written = rest
                .split_once("-digit-")
                .map(|(c, a)| (c, "digit", a))
                .or_else(|| rest.split_once("-number-").map(|(c, a)| (c, "number", a)));
            if let Some((condition, kind, answer)) = written {
                let right = said.as_deref() == Some(answer);
                let verdict = verdicts
                    .entry((condition.to_string(), kind, stem.to_string()))
                    .or_default();
                if original {
                    verdict.original = Some(right);
                } else if unruled {
                    verdict.unruled = Some(right);
                } else {
                    verdict.photo = Some(right);
                }
            } else {
                // A blank: right when refused. Which command refused it is not in the line,
                // so the name of the file the line came from says.
                let kind = if named.contains("read") {
                    "read"
                } else {
                    "predict"
                };
                tally.add(rest, kind, said.is_none() && reading.refused);
            }
        }
    }
    let mut originals = false;
    let mut unruled = false;
    for ((condition, kind, _), verdict) in &verdicts {
        // Each condition's row, and the row of all of them.
        for row in [condition.as_str(), ALL_CONDITIONS] {
            if let Some(right) = verdict.photo {
                tally.add(row, kind, right);
            }
            if let Some(right) = verdict.original {
                originals = true;
                let (of_originals, where_right) = match *kind {
                    "digit" => ("original digit", "digit where original right"),
                    _ => ("original number", "number where original right"),
                };
                tally.add(row, of_originals, right);
                if let (true, Some(photo)) = (right, verdict.photo) {
                    tally.add(row, where_right, photo);
                }
            }
            if let (Some(without), Some(with)) = (verdict.unruled, verdict.photo) {
                unruled = true;
                let (lined, bare) = match *kind {
                    "digit" => ("lined digit", "unruled digit"),
                    _ => ("lined number", "unruled number"),
                };
                tally.add(row, lined, with);
                tally.add(row, bare, without);
            }
        }
    }
    if originals {
        println!("| condition | single digits right | numbers exactly right | digits right as MNIST pictures | numbers right as MNIST pictures | digits right, of those right as MNIST pictures | numbers right, of those right as MNIST pictures |");
        println!("| --- | --- | --- | --- | --- | --- | --- |");
    } else {
        println!("| condition | single digits right | numbers exactly right |");
        println!("| --- | --- | --- |");
    }
    let rows = Condition::ALL.map(Condition::name);
    for name in rows.into_iter().chain([ALL_CONDITIONS]) {
        print!("| {name} |{}", tally.cells(name, &["digit", "number"]));
        if originals {
            print!(
                "{}",
                tally.cells(
                    name,
                    &[
                        "original digit",
                        "original number",
                        "digit where original right",
                        "number where original right",
                    ]
                )
            );
        }
        println!();
    }
    if unruled {
        println!();
        println!("| condition: its pictures with printed lines | single digits right | the same without the lines | numbers exactly right | the same without the lines |");
        println!("| --- | --- | --- | --- | --- |");
        let lined = |name: &str| {
            ["lined digit", "lined number"]
                .iter()
                .any(|kind| tally.0.contains_key(&(name.to_string(), *kind)))
        };
        for name in rows
            .into_iter()
            .chain([ALL_CONDITIONS])
            .filter(|n| lined(n))
        {
            let kinds = [
                "lined digit",
                "unruled digit",
                "lined number",
                "unruled number",
            ];
            println!("| {name} |{}", tally.cells(name, &kinds));
        }
    }
    println!();
    println!("| blank picture | refused by `predict` | refused by `read` |");
    println!("| --- | --- | --- |");
    for b in Blank::ALL {
        let name = b.name();
        println!("| {name} |{}", tally.cells(name, &["predict", "read"]));
    }
    Ok(())
}
