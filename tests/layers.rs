//! End-to-end: a network of one's own (`--layers`) trains, and every command afterwards works
//! from its checkpoint alone; bad lists are refused in one line before any data is read.

mod common;

use std::path::Path;

use common::*;

/// A list no code special-cases: batch norm after a conv and a dense layer, an odd map (25 →
/// pool 12), a 2x2 kernel.
const LIST: &str =
    "conv8x4,bn,relu,pool2,conv12x3,relu,conv6x2,pool2,flatten,dense32,bn,relu,dense10";

/// Trains `layers` for 2 epochs on synthetic data into `dir/own.safetensors`, writing the
/// metrics; returns the checkpoint and its test accuracy.
fn train(dir: &Path, layers: &str) -> (std::path::PathBuf, f64) {
    let data = dir.join("data");
    if !data.exists() {
        write_synthetic_mnist(&data, 600, 200, true);
    }
    let out = dir.join("own.safetensors");
    let stdout = run(mnist()
        .args([
            "train", "--epochs", "2", "--device", "cpu", "--layers", layers,
        ])
        .arg("--data-dir")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .arg("--metrics")
        .arg(dir.join("metrics.jsonl")))
    .ok();
    let line = stdout.lines().find(|l| l.starts_with("epoch 2/2")).unwrap();
    (out, field(line, "test_accuracy").parse().unwrap())
}

#[test]
fn a_list_of_ones_own_trains_and_every_command_works_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (weights, accuracy) = train(dir.path(), LIST);
    // Deterministic: 0.855 after two epochs of 600 images (a working network of this size
    // learns the synthetic bars; a broken layer stays near 0.1).
    assert!(accuracy >= 0.85, "{accuracy}");
    let meta = metadata(&weights);
    assert_eq!(meta["mnist.architecture"], "custom");
    let config: serde_json::Value = serde_json::from_str(&meta["mnist.model_config"]).unwrap();
    assert_eq!(
        config["layers"].as_array().unwrap().len(),
        LIST.split(',').count()
    );

    // eval, from the checkpoint alone.
    let json = run(mnist()
        .args(["eval", "--json", "--device", "cpu", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--weights")
        .arg(&weights))
    .ok();
    let report: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(report["architecture"], "custom");
    assert_eq!(report["accuracy"].as_f64().unwrap(), accuracy, "{report}");

    // predict and read answer with it.
    let picture = repo().join("tests/pictures/00002-digit-2.png");
    let out = run(mnist()
        .args(["predict", "--json", "--device", "cpu", "--weights"])
        .arg(&weights)
        .arg(&picture))
    .ok();
    let answer: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert!(answer["digit"].as_u64().unwrap() < 10, "{answer}");
    let number = repo().join("tests/pictures/00002-number-459.tiff");
    let out = run(mnist()
        .args(["read", "--json", "--device", "cpu", "--weights"])
        .arg(&weights)
        .arg(&number))
    .ok();
    let answer: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(answer["digits"].as_array().unwrap().len(), 3, "{answer}");

    // export: an ONNX file whose graph has this network's convolutions, batch norm folded.
    let onnx = dir.path().join("own.onnx");
    run(mnist()
        .args(["export", "--weights"])
        .arg(&weights)
        .arg("--out")
        .arg(&onnx))
    .ok();
    let model = mnist_export::decode(&std::fs::read(&onnx).unwrap()).unwrap();
    let ops: Vec<&str> = model
        .graph
        .as_ref()
        .unwrap()
        .node
        .iter()
        .map(|n| n.op_type())
        .collect();
    assert_eq!(
        ops,
        [
            "Sub", "Div", "Conv", "Relu", "MaxPool", "Conv", "Relu", "Conv", "MaxPool", "Flatten",
            "Gemm", "Relu", "Gemm"
        ],
        "normalization, then the list with batch norm folded"
    );
    let text = String::from_utf8_lossy(&std::fs::read(&onnx).unwrap()).into_owned();
    assert!(
        text.contains(r#""layers":["conv8x4","bn","relu""#),
        "the layer list is in the metadata"
    );

    // report, and summary of the same list.
    let figures = dir.path().join("report");
    run(mnist()
        .args(["report", "--device", "cpu", "--metrics"])
        .arg(dir.path().join("metrics.jsonl"))
        .arg("--weights")
        .arg(&weights)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--out")
        .arg(&figures))
    .ok();
    assert!(figures.join("index.html").is_file());
    let summary = run(mnist().args(["summary", "--json", "--layers", LIST])).ok();
    let summary: serde_json::Value = serde_json::from_str(summary.trim()).unwrap();
    assert_eq!(summary["layers"], LIST);

    // serve answers a drawing with it.
    let server = Server::start(&["--device", "cpu", "--weights", weights.to_str().unwrap()]);
    let png = std::fs::read(&picture).unwrap();
    let (status, body) = post_read(&server.addr, Some("image/png"), &png).expect("an answer");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(answer["digits"].is_array(), "{answer}");

    // The same weights as a plain state_dict (no metadata) evaluate with --layers.
    let bytes = std::fs::read(&weights).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let plain: Vec<_> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| !n.starts_with("optim."))
        .collect();
    let foreign = dir.path().join("state_dict.safetensors");
    safetensors::serialize_to_file(plain, None, &foreign).unwrap();
    let json = run(mnist()
        .args([
            "eval",
            "--json",
            "--device",
            "cpu",
            "--layers",
            LIST,
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .arg("--weights")
        .arg(&foreign))
    .ok();
    let plain_report: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(plain_report["accuracy"], report["accuracy"]);
    // ...and another list is refused, naming the tensor that does not fit.
    let err = run(mnist()
        .args([
            "eval",
            "--device",
            "cpu",
            "--layers",
            "conv8x4,relu,flatten,dense10",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .arg("--weights")
        .arg(&foreign))
    .one_line_error();
    assert!(
        err.contains("state_dict.safetensors") && err.contains("conv1"),
        "{err}"
    );
}

/// The same list written in a file, as JSON or as text with comments, trains the same network.
#[test]
fn a_layers_file_holds_the_list_as_json_or_text() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("net.json");
    let layers: Vec<&str> = "conv4x3,relu,pool2,flatten,dense10".split(',').collect();
    std::fs::write(&json, serde_json::to_string(&layers).unwrap()).unwrap();
    let (weights, accuracy) = train(dir.path(), json.to_str().unwrap());
    assert_eq!(accuracy, 1.0, "deterministically every bar is told apart");
    let config: serde_json::Value =
        serde_json::from_str(&metadata(&weights)["mnist.model_config"]).unwrap();
    assert_eq!(config["layers"], serde_json::json!(layers));
    let text = dir.path().join("net.txt");
    std::fs::write(
        &text,
        "# a small one\nconv4x3 relu pool2\nflatten\ndense10\n",
    )
    .unwrap();
    let summary = run(mnist().args(["summary", "--json", "--layers"]).arg(&text)).ok();
    let summary: serde_json::Value = serde_json::from_str(summary.trim()).unwrap();
    assert_eq!(summary["layers"], "conv4x3,relu,pool2,flatten,dense10");
}

/// Bad lists: one line naming the layer and the shapes, exit 2 (a usage error), before any data
/// is looked for (the data folder given does not exist).
#[test]
fn bad_lists_are_refused_before_any_data_is_read() {
    for (list, words) in [
        (
            "conv32x3,relu,poool2,flatten,dense10",
            "unknown layer \"poool2\"",
        ),
        (
            "conv8x3,relu,pool2,pool2,pool2,pool2,pool2,flatten,dense10",
            "below 1x1",
        ),
        ("conv8x3,dense128,dense10", "put flatten before it"),
        (
            "conv8x3,relu,flatten,dense128",
            "last layer must be dense10",
        ),
        ("conv4096x3,relu,flatten,dense10", "values per image"),
        (
            "flatten,dense4096,dense4096,dense4096,dense4096,dense4096,dense4096,dense4096,dense10",
            "parameters",
        ),
        ("nets/missing.json", "no such file"),
    ] {
        let out = mnist()
            .args([
                "train",
                "--device",
                "cpu",
                "--layers",
                list,
                "--data-dir",
                "/nonexistent/mnist",
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{list}: {stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(errors.len(), 1, "{list}: {stderr}");
        assert!(errors[0].contains(words), "{list}: {stderr}");
        assert!(
            !stderr.contains("nonexistent") && !stderr.contains("panicked"),
            "{stderr}"
        );
    }
}
