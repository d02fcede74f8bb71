//! End-to-end: `mnist train --report` and `mnist report` draw the training report from a short
//! run on small synthetic data: valid PNGs of the expected sizes, SVGs, an index.html linking
//! them, and test counts that agree with `mnist eval`.

mod common;

use std::path::Path;

use common::*;

/// Each figure and its size in pixels.
const FIGURES: [(&str, u32, u32); 4] = [
    ("loss", 800, 480),
    ("accuracy", 800, 480),
    ("confusion", 720, 720),
    ("mistakes", 960, 500),
];

/// Width and height from a PNG's IHDR chunk, after checking the signature.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{}: not a PNG",
        path.display()
    );
    assert_eq!(&bytes[12..16], b"IHDR", "{}", path.display());
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    // The whole file must decode, not just start right.
    image::load_from_memory(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (be(16), be(20))
}

fn check_report(dir: &Path, stdout: &str) {
    for (name, width, height) in FIGURES {
        assert_eq!(
            png_size(&dir.join(format!("{name}.png"))),
            (width, height),
            "{name}"
        );
        let svg = std::fs::read_to_string(dir.join(format!("{name}.svg"))).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{name}.svg"
        );
        assert!(svg.contains(&format!("width=\"{width}\"")), "{name}.svg");
        for ext in ["png", "svg"] {
            let file = dir.join(format!("{name}.{ext}"));
            assert!(
                stdout.lines().any(|l| Path::new(l) == file),
                "{} not listed: {stdout}",
                file.display()
            );
        }
    }
    let index = std::fs::read_to_string(dir.join("index.html")).unwrap();
    for (name, _, _) in FIGURES {
        assert!(index.contains(&format!("src=\"{name}.png\"")), "{index}");
        assert!(index.contains(&format!("href=\"{name}.svg\"")), "{index}");
    }
}

/// `R of N test images right` from index.html.
fn right_of(index: &str) -> (u64, u64) {
    let words: Vec<&str> = index.split_whitespace().collect();
    let at = words
        .windows(3)
        .position(|w| w[1] == "of" && w[2].parse::<u64>().is_ok() && w[0].parse::<u64>().is_ok())
        .unwrap_or_else(|| panic!("no 'R of N' in {index}"));
    (words[at].parse().unwrap(), words[at + 2].parse().unwrap())
}

#[test]
fn train_report_and_report_afterwards_draw_the_figures() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic_mnist(&data, 600, 200, true);
    let out = dir.path().join("m.safetensors");
    let metrics = dir.path().join("m.jsonl");
    let during = dir.path().join("report");
    let stdout = run(mnist()
        .args([
            "train",
            "--epochs",
            "3",
            "--batch-size",
            "16",
            "--device",
            "cpu",
            "--data-dir",
        ])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .arg("--metrics")
        .arg(&metrics)
        .arg("--report")
        .arg(&during))
    .ok();
    check_report(&during, &stdout);
    let index = std::fs::read_to_string(during.join("index.html")).unwrap();
    assert_eq!(index.matches("<tr><td>").count(), 3, "one row per epoch");

    let after = dir.path().join("after");
    let stdout = run(mnist()
        .args(["report", "--device", "cpu", "--data-dir"])
        .arg(&data)
        .arg("--metrics")
        .arg(&metrics)
        .arg("--weights")
        .arg(&out)
        .arg("--out")
        .arg(&after))
    .ok();
    check_report(&after, &stdout);

    // Both count what `mnist eval` counts.
    let eval = run(mnist()
        .args(["eval", "--json", "--device", "cpu", "--data-dir"])
        .arg(&data)
        .arg("--weights")
        .arg(&out))
    .ok();
    let eval: serde_json::Value = serde_json::from_str(eval.trim()).unwrap();
    let right = (eval["accuracy"].as_f64().unwrap() * 200.0).round() as u64;
    for report in [&during, &after] {
        let index = std::fs::read_to_string(report.join("index.html")).unwrap();
        assert_eq!(right_of(&index), (right, 200), "{}", report.display());
    }
}

#[test]
fn report_refuses_a_bad_metrics_file_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("notes.jsonl");
    std::fs::write(&metrics, "epoch 1 loss 0.5\n").unwrap();
    let line = run(mnist()
        .args([
            "report",
            "--weights",
            "weights/tutorial.safetensors",
            "--out",
        ])
        .arg(dir.path().join("r"))
        .arg("--metrics")
        .arg(&metrics)
        .current_dir(repo()))
    .one_line_error();
    assert!(
        line.contains("notes.jsonl: line 1") && line.contains("mnist train --metrics"),
        "{line}"
    );
}

/// `--report` on a resumed run: with the `--metrics` file both runs appended to, the curves and
/// the table hold every epoch, the two before the resume included; without it, only the epoch
/// this run trained. Either way the final model is what is evaluated.
#[test]
fn report_after_resume_draws_every_epoch_from_the_metrics_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic_mnist(&data, 300, 100, true);
    let out = dir.path().join("m.safetensors");
    let metrics = dir.path().join("m.jsonl");
    run(mnist()
        .args([
            "train",
            "--epochs",
            "2",
            "--batch-size",
            "16",
            "--device",
            "cpu",
        ])
        .arg("--data-dir")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .arg("--metrics")
        .arg(&metrics))
    .ok();
    let resume = |epochs: &str, report: &Path, with_metrics: bool| {
        let mut cmd = mnist();
        cmd.args(["train", "--epochs", epochs, "--device", "cpu", "--data-dir"])
            .arg(&data)
            .arg("--resume")
            .arg(&out)
            .arg("--report")
            .arg(report);
        if with_metrics {
            cmd.arg("--metrics").arg(&metrics);
        }
        run(&mut cmd).ok()
    };
    let with = dir.path().join("with-metrics");
    let stdout = resume("3", &with, true);
    assert!(stdout.starts_with("epoch 3/3"), "{stdout}");
    check_report(&with, &stdout);
    let index = std::fs::read_to_string(with.join("index.html")).unwrap();
    assert_eq!(
        index.matches("<tr><td>").count(),
        3,
        "epochs 1 and 2 (before the resume) and 3: {index}"
    );

    let without = dir.path().join("without-metrics");
    let stdout = resume("4", &without, false);
    assert!(stdout.starts_with("epoch 4/4"), "{stdout}");
    let index = std::fs::read_to_string(without.join("index.html")).unwrap();
    assert_eq!(index.matches("<tr><td>").count(), 1, "{index}");

    let eval = run(mnist()
        .args(["eval", "--json", "--device", "cpu", "--data-dir"])
        .arg(&data)
        .arg("--weights")
        .arg(&out))
    .ok();
    let eval: serde_json::Value = serde_json::from_str(eval.trim()).unwrap();
    let right = (eval["accuracy"].as_f64().unwrap() * 100.0).round() as u64;
    assert_eq!(right_of(&index), (right, 100));
}
