//! `mnist read` with a model other than the built-in one (`--weights`, and `--model` for a file
//! without metadata), and the range check of `--min-confidence` for `read` and `serve`.

mod common;

use std::ffi::OsStr;

use common::*;
use serde_json::Value;

const PICTURE: &str = "tests/pictures/00001-number-75845.webp";

fn read_json(flags: &[&OsStr]) -> Value {
    let out = run(mnist()
        .args(["read", "--json", "--device", "cpu"])
        .args(flags)
        .arg(repo().join(PICTURE)))
    .ok();
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The tutorial model reads the picture too, with probabilities of its own (so the file was
/// used, not the built-in convnet); its bare state_dict with `--model tutorial` gives exactly the
/// same answer, and without `--model` is refused in one line that says to pass it.
#[test]
fn read_uses_the_weights_and_model_it_is_given() {
    let seed = repo().join("weights/tutorial.safetensors");
    let built_in = read_json(&[]);
    let with_seed = read_json(&["--weights".as_ref(), seed.as_os_str()]);
    assert_eq!(built_in["number"], "75845");
    assert_eq!(with_seed["number"], "75845");
    assert_ne!(built_in["digits"], with_seed["digits"]);

    let dir = tempfile::tempdir().unwrap();
    let state_dict = dir.path().join("seed-state-dict.safetensors");
    write_state_dict(&seed, &state_dict);
    let bare = read_json(&[
        "--weights".as_ref(),
        state_dict.as_os_str(),
        "--model".as_ref(),
        "seed".as_ref(),
    ]);
    assert_eq!(bare["digits"], with_seed["digits"]);
    let line = run(mnist()
        .args(["read", "--weights"])
        .arg(&state_dict)
        .arg(repo().join(PICTURE)))
    .one_line_error();
    assert!(
        line.contains("seed-state-dict.safetensors") && line.contains("pass --model"),
        "{line}"
    );
}

#[test]
fn a_min_confidence_outside_0_to_1_is_one_line() {
    for value in ["1.5", "-0.1", "NaN"] {
        let flag = format!("--min-confidence={value}");
        let line = run(mnist().args(["read", &flag]).arg(repo().join(PICTURE))).one_line_error();
        assert!(
            line.contains("--min-confidence") && line.contains("from 0 to 1"),
            "{line}"
        );
        let line = run(mnist().args(["serve", "--addr", "127.0.0.1:0", &flag])).one_line_error();
        assert!(line.contains("--min-confidence"), "{line}");
    }
}
