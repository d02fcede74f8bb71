//! End-to-end: the real binary trains, checkpoints, resumes and evaluates.

mod common;

use common::*;

/// The tutorial recipe for one epoch on the real MNIST must already beat 97.5% (Keras reaches
/// ~98% after one epoch); `eval` must then report exactly what training reported.
#[test]
fn one_epoch_on_real_mnist_reaches_the_floor_and_eval_agrees() {
    let data = real_mnist_dir();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("seed.safetensors");
    let metrics = dir.path().join("metrics.jsonl");
    let stdout = run(mnist()
        .args(["train", "--epochs", "1", "--device", "cpu", "--data-dir"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .arg("--metrics")
        .arg(&metrics))
    .ok();
    let line = stdout
        .lines()
        .find(|l| l.starts_with("epoch 1/1"))
        .expect("no epoch line");
    let accuracy: f64 = field(line, "test_accuracy").parse().unwrap();
    assert!(
        accuracy >= 0.975,
        "one epoch of the tutorial recipe reached only {accuracy}: {line}"
    );

    let meta = metadata(&out);
    assert_eq!(meta["format"], "pt");
    assert_eq!(meta["mnist.architecture"], "tutorial");
    assert_eq!(meta["mnist.epoch"], "1");

    let json = run(mnist()
        .args(["eval", "--json", "--device", "cpu", "--data-dir"])
        .arg(&data)
        .arg("--weights")
        .arg(&out))
    .ok();
    let report: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(report["n"], 10_000);
    assert!(
        (report["accuracy"].as_f64().unwrap() - accuracy).abs() < 1e-4,
        "{report}"
    );
    assert_eq!(report["per_class"].as_array().unwrap().len(), 10);
    let confusion = report["confusion"].as_array().unwrap();
    assert_eq!(confusion.len(), 10);
    let total: u64 = confusion
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 10_000);
    let diagonal: u64 = (0..10).map(|i| confusion[i][i].as_u64().unwrap()).sum();
    assert_eq!(
        diagonal as f64 / 10_000.0,
        report["accuracy"].as_f64().unwrap()
    );

    let metrics = std::fs::read_to_string(&metrics).unwrap();
    let m: serde_json::Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    assert_eq!(m["epoch"], 1);
    assert!((m["test_accuracy"].as_f64().unwrap() - accuracy).abs() < 1e-4);
}

/// Synthetic data the seed model learns in a few epochs: training really trains, on gzipped
/// and raw files alike, and the human-readable eval table is printed.
#[test]
fn trains_on_small_synthetic_data_gzipped_or_raw() {
    for gzipped in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        write_synthetic_mnist(&dir.path().join("data"), 600, 200, gzipped);
        let out = dir.path().join("m.safetensors");
        let stdout = run(mnist()
            .args([
                "train",
                "--epochs",
                "2",
                "--batch-size",
                "16",
                "--device",
                "cpu",
                "--data-dir",
            ])
            .arg(dir.path().join("data"))
            .arg("--out")
            .arg(&out))
        .ok();
        let last = stdout.lines().last().unwrap();
        assert!(last.starts_with("epoch 2/2"), "{stdout}");
        let accuracy: f64 = field(last, "test_accuracy").parse().unwrap();
        assert!(
            accuracy > 0.95,
            "synthetic blocks should be easy, got {accuracy}"
        );

        let table = run(mnist()
            .args(["eval", "--device", "cpu", "--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--weights")
            .arg(&out))
        .ok();
        assert!(
            table.starts_with(&format!("accuracy {:.4} (", accuracy)),
            "{table}"
        );
        assert!(table.contains("confusion matrix"));
        assert_eq!(
            table
                .lines()
                .filter(|l| l.trim_start().starts_with(char::is_numeric))
                .count(),
            10 + 1
        );
    }
}

/// A run stopped after epoch 2 and resumed to 4 ends with exactly the weights, batch-norm
/// statistics and optimizer state of an uninterrupted 4-epoch run (CPU, same seed), for every
/// shipped network and a list of one's own, with each optimizer.
#[test]
fn resume_after_two_of_four_epochs_is_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic_mnist(&data, 200, 50, true);
    for (model, extra) in [
        ("tutorial", vec!["--model", "tutorial"]),
        (
            "convnet",
            vec![
                "--model",
                "convnet",
                "--augment",
                "--optimizer",
                "sgd",
                "--momentum",
                "0.9",
                "--lr",
                "0.01",
                "--lr-decay",
                "0.7",
            ],
        ),
        ("fast", vec!["--model", "fast", "--optimizer", "adamw"]),
        (
            "custom",
            vec![
                "--layers",
                "conv8x5,bn,relu,pool2,conv6x3,relu,pool2,flatten,dense24,relu,dense10",
            ],
        ),
    ] {
        let base = |epochs: &str, out: &std::path::Path| {
            let mut cmd = mnist();
            cmd.args([
                "train",
                "--epochs",
                epochs,
                "--batch-size",
                "32",
                "--seed",
                "7",
                "--device",
                "cpu",
            ])
            .args(&extra)
            .arg("--data-dir")
            .arg(&data)
            .arg("--out")
            .arg(out);
            cmd
        };
        let full = dir.path().join(format!("{model}-full.safetensors"));
        run(&mut base("4", &full)).ok();
        let part = dir.path().join(format!("{model}-part.safetensors"));
        run(&mut base("2", &part)).ok();
        assert_eq!(metadata(&part)["mnist.epoch"], "2");
        let resumed = run(mnist()
            .args(["train", "--epochs", "4", "--device", "cpu", "--data-dir"])
            .arg(&data)
            .arg("--resume")
            .arg(&part))
        .ok();
        assert!(
            resumed.lines().next().unwrap().starts_with("epoch 3/4"),
            "{resumed}"
        );
        assert_eq!(metadata(&part)["mnist.epoch"], "4");
        let (a, b) = (tensor_bytes(&full), tensor_bytes(&part));
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        for (name, bytes) in &a {
            assert!(
                bytes == &b[name],
                "{model}: tensor {name} differs after resume"
            );
        }
        assert!(
            a.keys().any(|k| k.starts_with("optim.")),
            "optimizer state must be in the checkpoint"
        );
    }
}

#[test]
fn resuming_a_finished_run_says_how_to_extend_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic_mnist(&data, 100, 20, false);
    let out = dir.path().join("m.safetensors");
    run(mnist()
        .args(["train", "--epochs", "1", "--device", "cpu", "--data-dir"])
        .arg(&data)
        .arg("--out")
        .arg(&out))
    .ok();
    let err = run(mnist()
        .args(["train", "--epochs", "1", "--device", "cpu", "--data-dir"])
        .arg(&data)
        .arg("--resume")
        .arg(&out))
    .one_line_error();
    assert!(
        err.contains("already completed 1 of 1 epochs") && err.contains("--epochs"),
        "{err}"
    );
}

/// A weights file as PyTorch's `save_file(model.state_dict())` writes it (no metadata, no
/// optimizer state) evaluates to the same accuracy once `--model` names its architecture.
#[test]
fn weights_without_metadata_evaluate_with_model_flag() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic_mnist(&data, 300, 100, true);
    let ours = dir.path().join("ours.safetensors");
    run(mnist()
        .args(["train", "--epochs", "1", "--device", "cpu", "--data-dir"])
        .arg(&data)
        .arg("--out")
        .arg(&ours))
    .ok();

    let bytes = std::fs::read(&ours).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let plain: Vec<_> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| !n.starts_with("optim."))
        .collect();
    let foreign = dir.path().join("state_dict.safetensors");
    safetensors::serialize_to_file(plain, None, &foreign).unwrap();

    let eval = |weights: &std::path::Path, extra: &[&str]| {
        let mut cmd = mnist();
        cmd.args(["eval", "--json", "--device", "cpu"])
            .args(extra)
            .arg("--data-dir")
            .arg(&data)
            .arg("--weights")
            .arg(weights);
        cmd
    };
    let err = run(&mut eval(&foreign, &[])).one_line_error();
    assert!(
        err.contains("state_dict.safetensors") && err.contains("--model"),
        "{err}"
    );
    let a: serde_json::Value = serde_json::from_str(&run(&mut eval(&ours, &[])).ok()).unwrap();
    let b: serde_json::Value =
        serde_json::from_str(&run(&mut eval(&foreign, &["--model", "seed"])).ok()).unwrap();
    assert_eq!(a["accuracy"], b["accuracy"]);
    assert_eq!(a["confusion"], b["confusion"]);
}

/// The shipped weights score exactly what the README and `weights/README.md` say (evaluation is
/// deterministic: the same forward pass in the same order), and `mnist` run from outside the
/// clone, with no data flag or variable, finds the repository's own copy of MNIST.
#[test]
fn the_shipped_weights_score_what_the_readme_says() {
    let elsewhere = tempfile::tempdir().unwrap();
    for (file, correct) in [
        ("weights/tutorial.safetensors", 9847),
        ("weights/fast.safetensors", 9921),
        ("weights/convnet.safetensors", 9967),
    ] {
        let out = mnist()
            .current_dir(elsewhere.path())
            .args(["eval", "--json", "--device", "cpu", "--weights"])
            .arg(repo().join(file))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{file}: {stderr}");
        assert!(
            stderr.contains("the copy in this repository"),
            "{file}: {stderr}"
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let accuracy = report["accuracy"].as_f64().unwrap();
        assert_eq!(
            (accuracy * 10_000.0).round() as u64,
            correct,
            "{file}: {report}"
        );
    }
}
