//! Nothing lost when training is killed, the disk fills up, or the loss explodes; and resuming
//! from any epoch gives the weights of an uninterrupted run, bit for bit.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use candle_core::Device;
use common::{metadata, mnist, run, tensor_bytes, write_synthetic_mnist};
use mnist_model::Checkpoint;

fn train(data: &Path, out: &Path, epochs: usize) -> Command {
    let mut cmd = mnist();
    cmd.args(["train", "--device", "cpu", "--seed", "7", "--epochs"])
        .arg(epochs.to_string())
        .arg("--data-dir")
        .arg(data)
        .arg("--out")
        .arg(out);
    cmd
}

fn resume(data: &Path, checkpoint: &Path, epochs: usize) -> Command {
    let mut cmd = mnist();
    cmd.args(["train", "--device", "cpu", "--epochs"])
        .arg(epochs.to_string())
        .arg("--data-dir")
        .arg(data)
        .arg("--resume")
        .arg(checkpoint);
    cmd
}

/// The temporary files of interrupted checkpoint writes beside `out`.
fn partial_files(out: &Path) -> Vec<PathBuf> {
    let prefix = format!(".{}.", out.file_name().unwrap().to_string_lossy());
    let Ok(entries) = std::fs::read_dir(out.parent().unwrap()) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(&prefix) && name.ends_with(".part")
        })
        .collect()
}

/// A complete checkpoint that builds its network; returns its epoch.
fn loadable_epoch(out: &Path) -> usize {
    let checkpoint = Checkpoint::read(out).unwrap_or_else(|e| panic!("torn checkpoint: {e}"));
    checkpoint
        .to_network(None, &Device::Cpu)
        .unwrap_or_else(|e| panic!("unloadable checkpoint: {e}"));
    checkpoint.meta.unwrap().epoch
}

fn assert_same_tensors(a: &Path, b: &Path) {
    let (a, b) = (tensor_bytes(a), tensor_bytes(b));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        assert!(bytes == &b[name], "tensor {name} differs");
    }
}

/// SIGKILL, 20 times, each time resuming the last run: every other kill at a pseudo-random moment
/// within two epochs' time, the others the instant a checkpoint write is seen in progress. After each, the checkpoint on disk is complete and
/// loadable and never goes back in time; the last one resumes to the end, and the result is the
/// uninterrupted run's, bit for bit.
#[cfg(unix)]
#[test]
fn sigkill_at_any_moment_leaves_a_loadable_checkpoint_and_resume_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic_mnist(&data, 1000, 100, true);
    let out = dir.path().join("run").join("m.safetensors");
    // One epoch first, timed: the kills then land anywhere in the next two epochs' time.
    let start = Instant::now();
    run(&mut train(&data, &out, 1)).ok();
    let epoch_ms = start.elapsed().as_millis() as u64;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let (mut last_epoch, mut killed_mid_write) = (1, 0);
    for kill in 0..20 {
        let mut cmd = resume(&data, &out, 1000);
        // Leftovers of earlier kills; the new run removes them, and a new name is a new write.
        let before = partial_files(&out);
        let new_write = || {
            partial_files(&out)
                .into_iter()
                .any(|p| !before.contains(&p))
        };
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if kill % 2 == 0 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            std::thread::sleep(Duration::from_millis(state % (2 * epoch_ms)));
        } else {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !new_write() {
                assert!(
                    Instant::now() < deadline,
                    "no checkpoint write seen in 60 s"
                );
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if new_write() {
            killed_mid_write += 1;
        }
        if out.exists() {
            let epoch = loadable_epoch(&out);
            assert!(
                epoch >= last_epoch,
                "kill {kill}: epoch went from {last_epoch} to {epoch}"
            );
            last_epoch = epoch;
        }
    }
    eprintln!("20 kills, {killed_mid_write} during a checkpoint write, reached epoch {last_epoch}");
    assert!(
        killed_mid_write >= 5,
        "only {killed_mid_write} kills hit a write"
    );
    let end = last_epoch + 1;
    let stdout = run(&mut resume(&data, &out, end)).ok();
    assert!(
        stdout.starts_with(&format!("epoch {end}/{end}")),
        "{stdout}"
    );
    assert_eq!(loadable_epoch(&out), end);
    assert!(
        partial_files(&out).is_empty(),
        "leftovers: {:?}",
        partial_files(&out)
    );
    let uninterrupted = dir.path().join("full.safetensors");
    run(&mut train(&data, &uninterrupted, end)).ok();
    assert_same_tensors(&out, &uninterrupted);
}

/// A disk that fills up during a checkpoint write: a clear error naming the file, and the
/// previous epoch's checkpoint intact. A 12 MB tmpfs holds one tutorial checkpoint (8.3 MB with
/// Adam's state) but not a second beside it. Without the right to mount, a 4 MB file-size limit
/// (RLIMIT_FSIZE, "File too large") on the resumed run makes the same write fail the same way.
#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_keeps_the_previous_checkpoint_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic_mnist(&data, 300, 50, true);
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let out = small.join("m.safetensors");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=12m", "tmpfs"])
        .arg(&small)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    struct Unmount<'a>(&'a Path, bool);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            if self.1 {
                let _ = Command::new("umount").arg(self.0).status();
            }
        }
    }
    let _unmount = Unmount(&small, mounted);
    let (line, cause) = if mounted {
        (
            run(&mut train(&data, &out, 3)).one_line_error(),
            "No space left on device",
        )
    } else {
        // RLIMIT_FSIZE limits each file, not the folder: write epoch 1 freely, then resume with
        // a limit below a checkpoint's size, so the epoch 2 write fails part way.
        run(&mut train(&data, &out, 1)).ok();
        let cmd = resume(&data, &out, 3);
        let mut limited = Command::new("bash");
        limited
            .arg("-c")
            .arg("trap '' XFSZ; ulimit -f 4096; exec \"$0\" \"$@\"")
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .env("MNIST_MIRROR", "http://127.0.0.1:9/");
        (run(&mut limited).one_line_error(), "File too large")
    };
    eprintln!(
        "{} : {line}",
        if mounted { "tmpfs" } else { "RLIMIT_FSIZE" }
    );
    assert!(
        line.contains("m.safetensors") && line.contains(cause),
        "{line}"
    );
    assert_eq!(loadable_epoch(&out), 1);
    assert!(
        partial_files(&out).is_empty(),
        "the failed write left {:?}",
        partial_files(&out)
    );
}

/// A learning rate that blows the loss up stops training with the step named, writes no
/// checkpoint of the ruined weights, and never replaces a good checkpoint. (With the default seed
/// this recipe's loss turns NaN within the first epoch; weights that turn NaN while the loss is
/// still finite are refused by the checkpoint writer itself, see mnist-model's tests.)
#[test]
fn an_exploding_loss_names_the_step_and_never_writes_its_weights() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic_mnist(&data, 400, 50, true);
    let exploding = |out: &Path| {
        let line = run(mnist()
            .args([
                "train",
                "--device",
                "cpu",
                "--epochs",
                "2",
                "--optimizer",
                "sgd",
            ])
            // 1e12, not 1e6: at 1e6 the weights now stay finite (the fused first layer never
            // multiplies an infinite activation by a zero mask), so the loss only grows.
            .args(["--lr", "1e12", "--data-dir"])
            .arg(&data)
            .arg("--out")
            .arg(out))
        .one_line_error();
        assert!(
            line.contains("the loss became") && line.contains("by step") && line.contains("--lr"),
            "{line}"
        );
    };
    let fresh = dir.path().join("fresh.safetensors");
    exploding(&fresh);
    assert!(
        !fresh.exists(),
        "a checkpoint of non-finite weights was written"
    );
    let out = dir.path().join("m.safetensors");
    run(&mut train(&data, &out, 1)).ok();
    let good = std::fs::read(&out).unwrap();
    exploding(&out);
    assert!(
        std::fs::read(&out).unwrap() == good,
        "the good checkpoint was overwritten"
    );
}

/// Resuming after epoch 1 and again after epoch 3 of a 4-epoch run gives the uninterrupted
/// run's tensors bit for bit (tests/train_eval.rs covers resuming after epoch 2, both models).
#[test]
fn resume_after_epochs_1_and_3_is_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic_mnist(&data, 300, 50, true);
    let full = dir.path().join("full.safetensors");
    run(&mut train(&data, &full, 4)).ok();
    let part = dir.path().join("part.safetensors");
    run(&mut train(&data, &part, 1)).ok();
    run(&mut resume(&data, &part, 3)).ok();
    assert_eq!(metadata(&part)["mnist.epoch"], "3");
    run(&mut resume(&data, &part, 4)).ok();
    assert_same_tensors(&full, &part);
}
