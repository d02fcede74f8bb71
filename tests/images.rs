//! End-to-end tests of `mnist predict` and `mnist read` on people-style pictures: accuracy on
//! pictures made from MNIST test digits (never seen in training), and one clear line for every
//! kind of bad file while the good files in the same call are still answered.
//!
//! The pictures come from `mnist_image::synth` (also behind `scripts/image-accuracy.sh`, which
//! reproduces the README's figures with more pictures).

mod common;

use std::path::{Path, PathBuf};

use common::{files_in, mnist, real_mnist_dir, repo, run};
use mnist_data::{find_file, read_images, read_labels, MnistFile};
use mnist_image::synth::{self, Sample};
use serde_json::Value;

/// MNIST's test images and labels.
fn test_digits() -> (Vec<u8>, Vec<u8>) {
    let dir = real_mnist_dir();
    let images = read_images(&find_file(&dir, MnistFile::TestImages).unwrap()).unwrap();
    let labels = read_labels(&find_file(&dir, MnistFile::TestLabels).unwrap()).unwrap();
    (images.pixels, labels.0)
}

fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Fraction of `samples` whose `key` in the JSON output equals the answer, and the misses.
fn score(samples: &[Sample], lines: &[Value], key: &str) -> (f64, Vec<String>) {
    assert_eq!(lines.len(), samples.len(), "one line per picture");
    let mut misses = Vec::new();
    for (sample, line) in samples.iter().zip(lines) {
        assert_eq!(Path::new(line["file"].as_str().unwrap()), sample.file);
        let got = match &line[key] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if got != sample.answer {
            misses.push(format!("{}: {got}", sample.file.display()));
        }
    }
    let accuracy = 1.0 - misses.len() as f64 / samples.len() as f64;
    (accuracy, misses)
}

fn paths(samples: &[Sample]) -> Vec<&PathBuf> {
    samples.iter().map(|s| &s.file).collect()
}

#[test]
fn predict_recognizes_user_style_pictures_of_mnist_test_digits() {
    let (digits, labels) = test_digits();
    let dir = tempfile::tempdir().unwrap();
    let samples = synth::write_digits(dir.path(), &digits, &labels, 600, 7).unwrap();
    let stdout = run(mnist().arg("predict").arg("--json").args(paths(&samples))).ok();
    let lines = json_lines(&stdout);
    for line in &lines {
        let probabilities: Vec<f64> =
            serde_json::from_value(line["probabilities"].clone()).unwrap();
        assert_eq!(probabilities.len(), 10);
        assert!((probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-4);
        let digit = line["digit"].as_u64().unwrap() as usize;
        assert_eq!(line["probability"].as_f64().unwrap(), probabilities[digit]);
        assert_eq!(line["top3"][0]["digit"].as_u64().unwrap() as usize, digit);
    }
    let (accuracy, misses) = score(&samples, &lines, "digit");
    eprintln!(
        "predict: {:.2}% of {} pictures right",
        accuracy * 100.0,
        samples.len()
    );
    // 599 of 600 right with the built-in model (seed 7): the gate allows one more miss.
    assert!(
        misses.len() <= 2,
        "{:.2}%; misses: {misses:#?}",
        accuracy * 100.0
    );
}

#[test]
fn read_reads_numbers_of_2_to_7_separated_digits() {
    let (digits, labels) = test_digits();
    let dir = tempfile::tempdir().unwrap();
    let samples = synth::write_numbers(dir.path(), &digits, &labels, 300, 2..=7, 11).unwrap();
    let stdout = run(mnist().arg("read").arg("--json").args(paths(&samples))).ok();
    let lines = json_lines(&stdout);
    for line in &lines {
        let number = line["number"].as_str().unwrap();
        let parts = line["digits"].as_array().unwrap();
        assert_eq!(parts.len(), number.len());
        let mut last_x = -1;
        for (part, ch) in parts.iter().zip(number.chars()) {
            assert_eq!(part["digit"].as_u64().unwrap().to_string(), ch.to_string());
            let bbox: [i64; 4] = serde_json::from_value(part["box"].clone()).unwrap();
            assert!(bbox[0] > last_x && bbox[2] > 0 && bbox[3] > 0, "{line}");
            last_x = bbox[0];
        }
    }
    let (accuracy, misses) = score(&samples, &lines, "number");
    eprintln!(
        "read: {:.2}% of {} numbers exactly right",
        accuracy * 100.0,
        samples.len()
    );
    // 296 of 300 right with the built-in model (seed 11): the gate allows one more miss.
    assert!(
        misses.len() <= 5,
        "{:.2}%; misses: {misses:#?}",
        accuracy * 100.0
    );
}

/// A clean picture of a digit-like ring (a zero), dark ink on white, `side` pixels square.
fn ring_png(path: &Path, side: u32) {
    let c = side as f32 / 2.0;
    let img = image::GrayImage::from_fn(side, side, |x, y| {
        let (dx, dy) = (
            (x as f32 - c) / (0.3 * side as f32),
            (y as f32 - c) / (0.4 * side as f32),
        );
        let r = (dx * dx + dy * dy).sqrt();
        image::Luma([if (0.75..1.0).contains(&r) { 20 } else { 245 }])
    });
    img.save(path).unwrap();
}

/// Every kind of bad file, written into `dir`, with the words its error line must contain.
fn bad_files(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let file = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let good = std::fs::read(dir.join("zero.png")).unwrap();
    let subdir = dir.join("folder.png");
    std::fs::create_dir_all(&subdir).unwrap();
    vec![
        (
            file(
                "blank.png",
                &synth::encode(
                    &image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(
                        50,
                        50,
                        image::Luma([255]),
                    )),
                    synth::Encoding::Png,
                ),
            ),
            "no ink found",
        ),
        (file("empty.png", b""), "the file is empty"),
        (
            file("cut.png", &good[..good.len() / 2]),
            "damaged or truncated",
        ),
        (
            file("notes.png", b"these are my notes, not a picture\n"),
            "not an image",
        ),
        (subdir, "is a directory"),
        (dir.join("missing.png"), "cannot read"),
        (
            file("bomb.png", &synth::png_header_claiming(100_000, 100_000)),
            "100000x100000",
        ),
    ]
}

#[test]
fn bad_files_each_get_one_line_and_the_good_ones_are_still_answered() {
    let dir = tempfile::tempdir().unwrap();
    ring_png(&dir.path().join("zero.png"), 120);
    let bad = bad_files(dir.path());
    for command in ["predict", "read"] {
        for json in [false, true] {
            let mut cmd = mnist();
            cmd.arg(command).arg(dir.path().join("zero.png"));
            cmd.args(bad.iter().map(|(p, _)| p));
            if json {
                cmd.arg("--json");
            }
            let out = run(&mut cmd);
            assert_eq!(out.code, Some(1), "{command}: {}", out.stderr);
            assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
            let errors: Vec<&str> = out
                .stderr
                .lines()
                .filter(|l| l.starts_with("error: "))
                .collect();
            assert_eq!(errors.len(), bad.len(), "{command}: {}", out.stderr);
            for ((path, words), line) in bad.iter().zip(&errors) {
                let name = path.file_name().unwrap().to_str().unwrap();
                assert!(
                    line.contains(name) && line.contains(words),
                    "{command}: {line:?} should name {name} and say {words:?}"
                );
            }
            // The good picture is answered first, in input order.
            let first = out.stdout.lines().next().unwrap_or_default();
            if json {
                let lines = json_lines(&out.stdout);
                assert_eq!(lines.len(), 1 + bad.len());
                let answer = if command == "predict" {
                    lines[0]["digit"].to_string()
                } else {
                    lines[0]["number"].as_str().unwrap().to_string()
                };
                assert_eq!(answer, "0", "{first}");
                assert!(lines[1..].iter().all(|l| l["error"].is_string()));
            } else {
                assert!(first.contains("zero.png: 0 "), "{command}: {first}");
            }
        }
    }
}

#[test]
fn read_flags_uncertain_digits_instead_of_guessing_silently() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zero.png");
    ring_png(&path, 80);
    // Nothing reaches a confidence of 1.0, so every digit is flagged.
    let out = run(mnist()
        .args(["read", "--min-confidence", "1", "--json"])
        .arg(&path));
    let line = &json_lines(&out.stdout)[0];
    assert_eq!(line["uncertain"], true, "{line}");
    assert_eq!(line["digits"][0]["uncertain"], true);
    let text = run(mnist().args(["read", "--min-confidence", "1"]).arg(&path)).ok();
    assert!(text.contains("0? "), "{text}");
    let err = run(mnist().args(["read", "--min-confidence", "1"]).arg(&path)).stderr;
    assert!(
        err.contains("warning: ") && err.contains("digit 1 of 1 is uncertain"),
        "{err}"
    );
    // At the default threshold a clean zero is not flagged.
    let line = &json_lines(&run(mnist().args(["read", "--json"]).arg(&path)).ok())[0];
    assert_eq!(line["uncertain"], false, "{line}");
}

#[test]
fn dump_preprocessed_writes_the_28x28_image_the_model_saw() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zero.png");
    ring_png(&path, 300);
    let dump = dir.path().join("seen");
    run(mnist()
        .arg("predict")
        .arg(&path)
        .arg("--dump-preprocessed")
        .arg(&dump))
    .ok();
    let seen = image::open(dump.join("zero.png")).unwrap().to_luma8();
    assert_eq!(seen.dimensions(), (28, 28));
    // MNIST's layout: light ink on black, the digit's box 20 high, the border empty.
    assert_eq!(seen.get_pixel(0, 0).0[0], 0);
    assert_eq!(seen.pixels().map(|p| p.0[0]).max(), Some(255));
    let rows: Vec<u32> = (0..28)
        .filter(|&y| (0..28).any(|x| seen.get_pixel(x, y).0[0] > 0))
        .collect();
    assert_eq!(rows.len(), 20, "{rows:?}");
    run(mnist()
        .arg("read")
        .arg(&path)
        .arg("--dump-preprocessed")
        .arg(&dump))
    .ok();
    assert!(dump.join("zero-1.png").is_file());
}

#[test]
fn other_weights_and_bad_weights() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zero.png");
    ring_png(&path, 60);
    let weights = repo().join("weights/tutorial.safetensors");
    let out = run(mnist()
        .arg("predict")
        .arg("--weights")
        .arg(&weights)
        .arg(&path))
    .ok();
    assert!(out.starts_with(&format!("{}: 0 ", path.display())), "{out}");
    let line = run(mnist()
        .arg("predict")
        .arg("--weights")
        .arg(&path)
        .arg(&path))
    .one_line_error();
    assert!(line.contains("zero.png: not a safetensors file"), "{line}");
}

#[test]
fn the_readme_pictures_are_read_as_their_names_say() {
    // Made by scripts/example-pictures.sh; the README shows this output.
    let files = files_in(&repo().join("tests/pictures"));
    assert_eq!(files.len(), 8, "{files:?}");
    for file in files {
        let name = file.file_stem().unwrap().to_str().unwrap().to_string();
        let (command, answer) = match name.split('-').collect::<Vec<_>>()[..] {
            [_, "digit", d] => ("predict", d.to_string()),
            [_, "number", n] => ("read", n.to_string()),
            _ => panic!("unexpected picture {name}"),
        };
        let out = run(mnist().arg(command).arg(&file)).ok();
        let expected = format!("{}: {answer} ", file.display());
        assert!(out.starts_with(&expected), "{out}");
    }
}
