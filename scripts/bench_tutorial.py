"""Side-by-side benchmark of the tutorial recipe: this project's `mnist train` against PyTorch.

Both train the tutorial CNN (batch 32, Adam 1e-3, x/255) on the CPU for the same number of
epochs, one after the other, with the same thread count. Prints per-epoch seconds (median),
final test accuracy, peak RSS, and the ratio. Run it on a quiet machine: anything on the other
core makes spinning thread pools several times slower.

Usage (through scripts/bench-tutorial.sh, which builds the binary and the venv):
    python scripts/bench_tutorial.py --mnist-dir DIR --binary target/release/mnist [--epochs 5]
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile


def run(cmd, env):
    """Runs cmd, returns (stdout lines, peak RSS in MB) using wait4's per-child accounting."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err}")
    return out.splitlines(), usage.ru_maxrss / 1024


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mnist-dir", required=True)
    p.add_argument("--binary", required=True)
    p.add_argument("--python", default=sys.executable, help="interpreter that has torch")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        lines, rss = run([args.binary, "train", "--device", "cpu", "--epochs", str(args.epochs),
                          "--data-dir", args.mnist_dir, "--out", os.path.join(tmp, "seed.safetensors")], env)
        epochs = [dict(zip(l.split()[0::2], l.split()[1::2])) for l in lines if l.startswith("epoch ")]
        rows.append(("mnist (this project, candle 0.11.1)",
                     [float(e["seconds"]) for e in epochs], float(epochs[-1]["test_accuracy"]), rss))

    lines, rss = run([args.python, os.path.join(here, "pytorch_tutorial.py"), args.mnist_dir,
                      "--epochs", str(args.epochs), "--threads", str(args.threads)], env)
    epochs = [json.loads(l) for l in lines if l.startswith("{")]
    import_version = subprocess.run([args.python, "-c", "import torch; print(torch.__version__)"],
                                    capture_output=True, text=True).stdout.strip()
    rows.append((f"PyTorch {import_version}", [e["seconds"] for e in epochs], epochs[-1]["test_accuracy"], rss))

    print(f"tutorial recipe, {args.epochs} epochs, batch 32, {args.threads} threads, {cpu_name()}, {os.cpu_count()} cores")
    print()
    print("| run | seconds per epoch (median) | all epochs | test accuracy | peak RSS | time vs this project |")
    print("| --- | --- | --- | --- | --- | --- |")
    ours = statistics.median(rows[0][1])
    for name, seconds, acc, rss in rows:
        med = statistics.median(seconds)
        print(f"| {name} | {med:.1f} | {' '.join(f'{s:.1f}' for s in seconds)} | {acc * 100:.2f}% "
              f"| {rss:.0f} MB | {med / ours:.2f}x |")


if __name__ == "__main__":
    main()
