//! The bad-input corpus: every malformed IDX file, checkpoint and picture in tests/corpus/
//! (made by scripts/make-bad-corpus.py, listed in tests/corpus/cases.tsv), plus a few cases
//! built here from the shipped weights, must end the process with exit code 1 and one line that
//! names the file and says what is wrong: no panic, and no child ever above a modest peak
//! memory (a header claiming 4 billion images or 100,000 x 100,000 pixels must cost nothing).

mod common;

use std::path::{Path, PathBuf};

use common::{mnist, repo, run, write_synthetic_mnist};

/// What a child process may use at most. Measured: 28 MB for the worst case in the corpus (the
/// built-in convnet loaded, then a picture refused); a reader that believed a header's claims
/// would need gigabytes.
const PEAK_RSS_LIMIT_MB: i64 = 150;

/// Asserts one `error:` line naming `name` and containing `words`; returns the line.
fn assert_named_error(cmd: &mut std::process::Command, name: &str, words: &str) -> String {
    let line = run(cmd).one_line_error();
    assert!(
        line.contains(name) && line.contains(words),
        "{line:?} should name {name} and say {words:?}"
    );
    line
}

/// Runs one corpus case: `role` says how the file reaches the binary.
fn check(file: &Path, role: &str, words: &str) {
    let name = file.file_name().unwrap().to_str().unwrap();
    let picture = repo().join("tests/pictures/00000-digit-5.gif");
    match role {
        "images" | "labels" => {
            let dir = tempfile::tempdir().unwrap();
            write_synthetic_mnist(dir.path(), 20, 10, false);
            let target = match role {
                "images" => "t10k-images-idx3-ubyte",
                _ => "t10k-labels-idx1-ubyte",
            };
            std::fs::copy(file, dir.path().join(target)).unwrap();
            let mut cmd = mnist();
            cmd.args(["eval", "--device", "cpu", "--weights"])
                .arg(repo().join("weights/tutorial.safetensors"))
                .arg("--data-dir")
                .arg(dir.path());
            assert_named_error(&mut cmd, target, words);
        }
        "weights" => {
            let mut cmd = mnist();
            cmd.args(["predict", "--device", "cpu", "--weights"])
                .arg(file)
                .arg(&picture);
            assert_named_error(&mut cmd, name, words);
        }
        "picture" => {
            assert_named_error(mnist().arg("predict").arg(file), name, words);
        }
        other => panic!("unknown role {other} in cases.tsv"),
    }
}

fn corpus() -> Vec<(PathBuf, String, String)> {
    let dir = repo().join("tests/corpus");
    let cases = std::fs::read_to_string(dir.join("cases.tsv")).unwrap();
    cases
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (dir.join(f[0]), f[1].to_string(), f[2].to_string())
        })
        .collect()
}

/// How many cases tests/corpus/cases.tsv lists (scripts/make-bad-corpus.py writes them): a case
/// lost from the list must fail here, not pass unnoticed.
const CORPUS_CASES: usize = 43;

#[test]
fn every_corpus_file_gets_one_line_naming_it_and_the_problem() {
    let cases = corpus();
    assert_eq!(cases.len(), CORPUS_CASES, "cases in tests/corpus/cases.tsv");
    for (file, role, words) in &cases {
        check(file, role, words);
    }
    assert_peak_memory_is_modest();
}

/// Every file under tests/corpus/ is a case in cases.tsv, and every case's file exists: a file
/// added without a line is never tested, a line without its file is a broken case.
#[test]
fn cases_tsv_lists_exactly_the_corpus_files() {
    fn files(dir: &Path, root: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(&path, root, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let root = repo().join("tests/corpus");
    let mut on_disk = Vec::new();
    files(&root, &root, &mut on_disk);
    on_disk.retain(|p| p != Path::new("cases.tsv"));
    on_disk.sort();
    let mut listed: Vec<PathBuf> = corpus()
        .into_iter()
        .map(|(file, _, _)| file.strip_prefix(&root).unwrap().to_path_buf())
        .collect();
    listed.sort();
    let unlisted: Vec<_> = on_disk.iter().filter(|f| !listed.contains(f)).collect();
    let missing: Vec<_> = listed.iter().filter(|f| !on_disk.contains(f)).collect();
    assert!(
        unlisted.is_empty() && missing.is_empty(),
        "files not in cases.tsv: {unlisted:?}; cases without a file: {missing:?}"
    );
    let mut unique = listed.clone();
    unique.dedup();
    assert_eq!(
        unique.len(),
        listed.len(),
        "a file listed twice in cases.tsv"
    );
}

/// The largest resident set of any child this test process has waited for (every case above).
#[cfg(unix)]
fn assert_peak_memory_is_modest() {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage only writes the struct it is given.
    assert_eq!(
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) },
        0
    );
    let peak_mb = usage.ru_maxrss / 1024; // KB on Linux
    eprintln!("peak RSS of any child: {peak_mb} MB");
    assert!(peak_mb < PEAK_RSS_LIMIT_MB, "a child used {peak_mb} MB");
}

#[cfg(not(unix))]
fn assert_peak_memory_is_modest() {}

/// Cases built from the shipped weights (too large to commit as copies) and directories (git
/// keeps no empty ones).
#[test]
fn weights_of_another_architecture_nan_weights_and_directories_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let seed = repo().join("weights/tutorial.safetensors");
    let picture = repo().join("tests/pictures/00000-digit-5.gif");
    // Another architecture: with metadata, and as a plain state_dict.
    let mut cmd = mnist();
    cmd.args(["predict", "--model", "convnet", "--weights"])
        .arg(&seed)
        .arg(&picture);
    assert_named_error(&mut cmd, "tutorial.safetensors", "holds a tutorial model");
    let bytes = std::fs::read(&seed).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensors: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| !n.starts_with("optim."))
        .collect();
    let state_dict = dir.path().join("seed-state-dict.safetensors");
    safetensors::serialize_to_file(tensors.clone(), None, &state_dict).unwrap();
    let mut cmd = mnist();
    cmd.args(["predict", "--model", "convnet", "--weights"])
        .arg(&state_dict)
        .arg(&picture);
    assert_named_error(&mut cmd, "seed-state-dict.safetensors", "is missing");
    // One NaN in fc2.bias.
    let mut fc2_bias = st.tensor("fc2.bias").unwrap().data().to_vec();
    fc2_bias[..4].copy_from_slice(&f32::NAN.to_le_bytes());
    let nan_view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![10], &fc2_bias).unwrap();
    let with_nan: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .into_iter()
        .map(|(n, v)| {
            if n == "fc2.bias" {
                (n, nan_view.clone())
            } else {
                (n, v)
            }
        })
        .collect();
    let nan_file = dir.path().join("nan.safetensors");
    safetensors::serialize_to_file(with_nan, None, &nan_file).unwrap();
    let mut cmd = mnist();
    cmd.args(["predict", "--model", "seed", "--weights"])
        .arg(&nan_file)
        .arg(&picture);
    assert_named_error(&mut cmd, "nan.safetensors", "NaN or infinite");
    // Directories where files belong.
    let data = dir.path().join("data");
    write_synthetic_mnist(&data, 20, 10, false);
    std::fs::remove_file(data.join("t10k-images-idx3-ubyte")).unwrap();
    std::fs::create_dir(data.join("t10k-images-idx3-ubyte")).unwrap();
    let mut cmd = mnist();
    cmd.args(["eval", "--weights"])
        .arg(&seed)
        .arg("--data-dir")
        .arg(&data);
    assert_named_error(&mut cmd, "t10k-images-idx3-ubyte", "Is a directory");
    let mut cmd = mnist();
    cmd.args(["predict", "--weights"])
        .arg(dir.path())
        .arg(&picture);
    assert_named_error(&mut cmd, &dir.path().display().to_string(), "directory");
}
