//! The photo-like test pictures of issue 17 (`mnist_image::synth::photo`), and their score.
//!
//! `photos write DIGITS NUMBERS BLANKS OUT_DIR [SEED [ORIGINALS_DIR]]` writes, for every
//! condition, single digits and numbers made from MNIST test digits drawn as pen lines, and
//! blank pages that must be refused (counts are per condition; MNIST from $MNIST_DIR or
//! ./data/mnist). With ORIGINALS_DIR it also writes there, under the same name as PNG, each
//! picture's MNIST digits as they are (`original_picture`): the reference for the score.
//!
//! `photos score FILE.jsonl...` reads what `mnist predict --json` and `mnist read --json` said
//! about such pictures and prints the accuracy per condition as a Markdown table: a digit or a
//! number counts when it is exactly the one in the file name, a blank picture when it was
//! refused. Lines from a file whose name holds "originals" are what was said about the
//! original pictures; with them the table sets each condition beside its originals' score and
//! counts the photos read right of those whose originals were. The last row counts all
//! conditions together. `scripts/photo-accuracy.sh` runs
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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use mnist_data::IMAGE_PIXELS;
use mnist_data::{data_dir, read_images, read_labels, MnistFile};
use mnist_image::synth::photo::{
    number_photo_of, original_picture, pen_fidelity, phone_photo, write_photos, Blank, Condition,
    Counts, MIN_PEN_FIDELITY,
};
use mnist_image::synth::{encode, Encoding};

type Error = Box<dyn std::error::Error>;

const USAGE: &str = "usage: photos write DIGITS NUMBERS BLANKS OUT_DIR [SEED [ORIGINALS_DIR]] | photos score FILE.jsonl... | photos big CONDITION OUT.jpg [SEED] | photos example CONDITION DIGITS OUT.jpg [SEED] | photos fidelity";

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("write") => write(&args[1..]),
        Some("score") => score(&args[1..]),
        Some("big") => big(&args[1..]),
        Some("example") => example(&args[1..]),
        Some("fidelity") => fidelity(),
        _ => Err(USAGE.into()),
    }
}

fn write(args: &[String]) -> Result<(), Error> {
    let [digits, numbers, blanks, out, rest @ ..] = args else {
        return Err(USAGE.into());
    };
    let seed: u64 = rest.first().map(|s| s.parse()).transpose()?.unwrap_or(1);
    let originals = rest.get(1).map(PathBuf::from);
    let (images, labels) = test_set()?;
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out)?;
    let counts = Counts {
        digits: digits.parse()?,
        numbers: numbers.parse()?,
        blanks: blanks.parse()?,
    };
    let set = write_photos(&out, &images, &labels, counts, seed)?;
    eprintln!(
        "wrote {} pictures to {} (passed over {} MNIST digits whose pen line does not stand for them)",
        set.samples.len(),
        out.display(),
        set.skipped
    );
    if let Some(dir) = originals {
        std::fs::create_dir_all(&dir)?;
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
}

/// The name of the score table's last row, which counts every condition's pictures.
const ALL_CONDITIONS: &str = "all conditions";

/// Whether a picture was read right, and its original picture (`photos write`'s
/// ORIGINALS_DIR) when it was read too.
#[derive(Default)]
struct Verdict {
    photo: Option<bool>,
    original: Option<bool>,
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
        let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
        for line in text.lines() {
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| format!("{file}: {e}: {line}"))?;
            let name = v["file"]
                .as_str()
                .ok_or(format!("{file}: no \"file\" in {line}"))?;
            let stem = Path::new(name)
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            // NNNNN-CONDITION-digit-L, NNNNN-CONDITION-number-DIGITS or NNNNN-BLANK.
            let rest = stem.split_once('-').map(|(_, r)| r).unwrap_or(stem);
            let said = v
                .get("digit")
                .map(|d| d.to_string())
                .or_else(|| v["number"].as_str().map(str::to_string));
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
                tally.add(rest, kind, said.is_none() && v["error"].is_string());
            }
        }
    }
    let mut originals = false;
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
        print!(
            "| {name} | {} | {} |",
            tally.cell(name, "digit"),
            tally.cell(name, "number")
        );
        if originals {
            print!(
                " {} | {} | {} | {} |",
                tally.cell(name, "original digit"),
                tally.cell(name, "original number"),
                tally.cell(name, "digit where original right"),
                tally.cell(name, "number where original right")
            );
        }
        println!();
    }
    println!();
    println!("| blank picture | refused by `predict` | refused by `read` |");
    println!("| --- | --- | --- |");
    for b in Blank::ALL {
        let name = b.name();
        println!(
            "| {name} | {} | {} |",
            tally.cell(name, "predict"),
            tally.cell(name, "read")
        );
    }
    Ok(())
}
