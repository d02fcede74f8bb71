//! `mnist export`, and the exported and shipped files checked by the other tools themselves:
//! ONNX Runtime (Python) and candle-onnx (Rust) run `mnist export`'s ONNX models, NumPy alone
//! runs the tutorial model from the safetensors file, and a state_dict written on the Python side
//! evaluates here to the same accuracy. Logits must agree with this project's forward pass to
//! 1e-4 on 256 MNIST test images (a NaN fails) and every predicted digit must be the same.
//!
//! The checks that need those tools are `#[ignore]`d, so that `cargo test` needs only cargo:
//! `scripts/verify-all.sh` runs them (`--ignored`) after making their environment, the Python
//! one in `target/python-venv` (`scripts/python-venv.sh`: NumPy, ONNX Runtime, safetensors and
//! protoc from PyPI) and candle-onnx built from `scripts/onnx-check` with that protoc. A pure-Rust
//! runtime inside `cargo test` was measured and left out: tract-onnx 0.23 alone takes 12 minutes
//! of CPU time to build in release, more than this whole workspace's tests.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{DType, Device, ModuleT, Tensor};
use common::{mnist, real_mnist_dir, repo, run};
use mnist_data::{find_file, read_images, MnistFile};
use mnist_model::Checkpoint;

const IMAGES: usize = 256;

/// The Python environment `scripts/python-venv.sh` made (this test never downloads anything).
fn venv() -> PathBuf {
    let check = Command::new(repo().join("scripts/python-venv.sh"))
        .arg("--check")
        .output()
        .expect("cannot run scripts/python-venv.sh");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr).trim()
    );
    repo().join("target/python-venv")
}

/// Runs a command that prints one result line; asserts it succeeded and returns the line.
fn checked(cmd: &mut Command) -> String {
    let out = cmd.output().expect("cannot start the checker");
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{stdout}");
    stdout
}

fn python(args: &[&Path]) -> String {
    checked(
        Command::new(venv().join("bin/python"))
            .arg(repo().join("scripts/check_export.py"))
            .args(args),
    )
}

/// Writes `dir/reference.safetensors`: the first 256 MNIST test images scaled to 0-1 and the
/// logits that this project's own forward pass gives for them with `weights`.
fn reference(dir: &Path, weights: &Path) -> PathBuf {
    let mnist = real_mnist_dir();
    let images = read_images(&find_file(&mnist, MnistFile::TestImages).unwrap()).unwrap();
    let pixels = Tensor::from_slice(
        &images.pixels[..IMAGES * 784],
        (IMAGES, 1, 28, 28),
        &Device::Cpu,
    )
    .unwrap();
    let checkpoint = Checkpoint::read(weights).unwrap();
    let network = checkpoint.to_network(None, &Device::Cpu).unwrap();
    let normalization = checkpoint.meta.unwrap().normalization;
    let logits = network
        .frozen()
        .unwrap()
        .forward_t(&normalization.apply(&pixels).unwrap(), false)
        .unwrap();
    let unit = (pixels.to_dtype(DType::F32).unwrap() / 255.0).unwrap();
    let path = dir.join("reference.safetensors");
    let tensors = HashMap::from([("images".to_string(), unit), ("logits".to_string(), logits)]);
    candle_core::safetensors::save(&tensors, &path).unwrap();
    path
}

fn export(dir: &Path, weights: &Path) -> PathBuf {
    let out = dir.join("model.onnx");
    run(mnist()
        .args(["export", "--format", "onnx", "--weights"])
        .arg(weights)
        .arg("--out")
        .arg(&out))
    .ok();
    out
}

#[test]
#[ignore = "needs Python with ONNX Runtime: run by scripts/verify-all.sh"]
fn onnx_runtime_gives_our_logits_for_every_architecture() {
    for name in ["tutorial", "convnet", "fast"] {
        let dir = tempfile::tempdir().unwrap();
        let weights = repo().join(format!("weights/{name}.safetensors"));
        let reference = reference(dir.path(), &weights);
        let model = export(dir.path(), &weights);
        let line = python(&[Path::new("ort"), &model, &reference]);
        assert!(line.contains(&format!("({name})")), "{line}");
    }
}

#[test]
#[ignore = "needs candle-onnx, whose build needs protoc: run by scripts/verify-all.sh"]
fn candle_onnx_gives_our_logits_for_every_architecture() {
    // candle-onnx needs protoc to build; the Python environment has one.
    let protoc = venv().join("bin/protoc");
    let target = repo().join("target/onnx-check");
    checked(
        Command::new(env!("CARGO"))
            .args([
                "build",
                "--release",
                "--locked",
                "--quiet",
                "--manifest-path",
            ])
            .arg(repo().join("scripts/onnx-check/Cargo.toml"))
            .env("PROTOC", &protoc)
            // A checking tool: its build time matters more than its speed on 768 images.
            .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "1")
            .env("CARGO_TARGET_DIR", &target),
    );
    for name in ["tutorial", "convnet", "fast"] {
        let dir = tempfile::tempdir().unwrap();
        let weights = repo().join(format!("weights/{name}.safetensors"));
        let reference = reference(dir.path(), &weights);
        let model = export(dir.path(), &weights);
        checked(
            Command::new(target.join("release/onnx-check"))
                .arg(&model)
                .arg(&reference),
        );
    }
}

#[test]
#[ignore = "needs Python with NumPy: run by scripts/verify-all.sh"]
fn numpy_alone_runs_the_tutorial_model_from_the_safetensors_file() {
    let dir = tempfile::tempdir().unwrap();
    let weights = repo().join("weights/tutorial.safetensors");
    let reference = reference(dir.path(), &weights);
    python(&[Path::new("numpy"), &weights, &reference]);
}

#[test]
#[ignore = "needs Python with safetensors: run by scripts/verify-all.sh"]
fn a_state_dict_saved_on_the_python_side_evaluates_to_the_same_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["tutorial", "convnet", "fast"] {
        let weights = repo().join(format!("weights/{name}.safetensors"));
        let state_dict = dir.path().join(format!("{name}-state-dict.safetensors"));
        python(&[Path::new("state-dict"), &weights, &state_dict]);
        let eval = |path: &Path, model: Option<&str>| {
            let mut cmd = mnist();
            cmd.args(["eval", "--json", "--device", "cpu", "--weights"])
                .arg(path);
            cmd.arg("--data-dir").arg(real_mnist_dir());
            if let Some(model) = model {
                cmd.args(["--model", model]);
            }
            let json: serde_json::Value = serde_json::from_str(&run(&mut cmd).ok()).unwrap();
            json["accuracy"].as_f64().unwrap()
        };
        let ours = eval(&weights, None);
        let theirs = eval(&state_dict, Some(name));
        assert_eq!(ours, theirs, "{name}");
        // predict and read take it too.
        let picture = repo().join("tests/pictures/00000-digit-5.gif");
        let out = run(mnist()
            .args(["predict", "--model", name, "--weights"])
            .arg(&state_dict)
            .arg(&picture))
        .ok();
        assert!(out.contains(": 5 ("), "{out}");
        // Without --model the file cannot say what it is, and the error says what to do.
        let line = run(mnist()
            .arg("predict")
            .arg("--weights")
            .arg(&state_dict)
            .arg(&picture))
        .one_line_error();
        assert!(line.contains("pass --model"), "{line}");
    }
}

#[test]
fn a_model_flag_that_contradicts_the_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let line = run(mnist()
        .args(["export", "--model", "convnet", "--weights"])
        .arg(repo().join("weights/tutorial.safetensors"))
        .arg("--out")
        .arg(dir.path().join("x.onnx")))
    .one_line_error();
    assert!(
        line.contains("tutorial.safetensors") && line.contains("tensor"),
        "{line}"
    );
    assert!(!dir.path().join("x.onnx").exists());
}

/// Without `--weights`, export writes the model built into the binary: the same bytes as
/// exporting `weights/convnet.safetensors` itself.
#[test]
fn export_without_weights_writes_the_built_in_model() {
    let dir = tempfile::tempdir().unwrap();
    let default = dir.path().join("default.onnx");
    let out = run(mnist().arg("export").arg("--out").arg(&default));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("(built in) (convnet)") && out.stderr.contains("ONNX opset"),
        "{}",
        out.stderr
    );
    let explicit = export(dir.path(), &repo().join("weights/convnet.safetensors"));
    let (a, b) = (
        std::fs::read(&default).unwrap(),
        std::fs::read(&explicit).unwrap(),
    );
    assert!(a.len() > 1_000_000, "{} bytes", a.len());
    assert!(
        a == b,
        "the built-in model exports differently from weights/convnet.safetensors"
    );
}
