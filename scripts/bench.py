"""Side-by-side benchmark: this project's `mnist` against PyTorch and TensorFlow on one machine.

1. The tutorial recipe (tutorial CNN, batch 32, Adam 1e-3, x/255, test set evaluated every
   epoch) in each framework, one after the other, with the same thread count: seconds per epoch
   (median), final test accuracy, peak RSS, and time relative to this project.
2. Inference with this project: `mnist eval` of the 10,000 test images (forward passes only,
   median of 5 runs) and `mnist predict` of one picture (wall time including process start,
   median of 10 runs).

With `--recipe networks`, instead: one epoch (or --epochs) of each network of --networks (default:
the shipped convnet and two lists no code special-cases, DEEPER and WIDER below) in this project
and in PyTorch (scripts/pytorch_train.py, the same layers, initialization family,
normalization and recipe: Adam 1e-3, batch 32): seconds per epoch (test set evaluated every
epoch in both), the GFLOP/s that makes (from `mnist summary`'s count of the network's
arithmetic), the test accuracy and peak RSS; then `mnist eval` of weights/convnet.safetensors
against the same forward passes in PyTorch (median of 5 runs each).

With `--recipe fast`, instead: the time-to-99% recipe (`mnist train --model fast --epochs 3
--lr 3e-3 --lr-decay 0.2`, batch 32, x/255) in this project and in PyTorch, each run once per seed
(--seeds, default 42,1,2): wall time of the whole process (start, reading the data, training, the
test set evaluated every epoch, and for this project writing the checkpoint), and the final test
accuracy of every run.

Run it on a quiet machine: anything on another core makes spinning thread pools several times
slower. The script prints the load average it started with, and refuses to report a figure
from a machine whose 1-minute load is above 0.5 unless --allow-busy is given.

Usage (through scripts/bench.sh, which builds the binary and the venv):
    python scripts/bench.py --mnist-dir DIR --binary target/release/mnist
        [--python VENV/bin/python] [--epochs 5] [--threads 2] [--device cpu|cuda]
        [--frameworks mnist,pytorch,tensorflow] [--recipe tutorial|fast|networks] [--seeds 42,1,2]
        [--networks convnet,LIST,...]
"""

import argparse
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time


def run_rss(cmd, env):
    """Runs cmd, returns (stdout lines, peak RSS in MB of that child alone, from wait4)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"{' '.join(cmd)} failed ({code}); run it by hand to see why")
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


def gpu_name(python):
    out = subprocess.run([python, "-c", "import torch; print(torch.cuda.get_device_name(0))"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "unknown GPU"


@functools.lru_cache(maxsize=None)
def version(python, module):
    out = subprocess.run([python, "-c", f"import {module}; print({module}.__version__)"],
                         capture_output=True, text=True)
    return out.stdout.strip() or None


def median_of(values):
    return statistics.median(values) if values else float("nan")


# The time-to-99% recipe, as `mnist train` flags (pytorch_train.py takes the same ones, with the
# network as --layers).
FAST_RECIPE = ["--model", "fast", "--epochs", "3", "--lr", "3e-3", "--lr-decay", "0.2"]

# Two user-defined networks for --recipe networks, which no code special-cases: a deeper one
# (five 3x3 conv layers with batch norm) and a wider one (5x5 convolutions, 48 and 96 channels).
DEEPER = "conv16x3,bn,relu,conv32x3,bn,relu,pool2,conv32x3,bn,relu,conv64x3,bn,relu,conv64x3,bn,relu,pool2,flatten,dense128,relu,dense10"
WIDER = "conv48x5,relu,pool2,conv96x5,relu,pool2,flatten,dense256,relu,dense10"


def summary(binary, network):
    """`mnist summary --json` of a shipped name or a layer list: its layers, arithmetic, etc."""
    flag = "--layers" if "," in network else "--model"
    out = subprocess.run([binary, "summary", flag, network, "--json"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def pytorch_layers(binary, recipe):
    """A recipe's flags for pytorch_train.py: `--model NAME` becomes that network's --layers."""
    flags = list(recipe)
    i = flags.index("--model")
    flags[i:i + 2] = ["--layers", summary(binary, flags[i + 1])["layers"]]
    return flags


def print_comparison(columns, rows):
    """The markdown table both recipes print: one row per framework (name, timings, accuracy text,
    peak RSS in MB), with its median timing as a ratio to this project's (the first row)."""
    print()
    print(f"| run | {' | '.join(columns)} | peak RSS | time vs this project |")
    print("| --- " * (len(columns) + 3) + "|")
    ours = median_of(rows[0][1]) if rows and rows[0][0].startswith("mnist") else None
    for name, timings, accuracy, rss in rows:
        med = median_of(timings)
        ratio = f"{med / ours:.2f}x" if ours else "-"
        print(f"| {name} | {med:.2f} | {' '.join(f'{t:.2f}' for t in timings)} | {accuracy} "
              f"| {rss:.0f} MB | {ratio} |")


def run_fast_recipe(args, here, env, frameworks, load):
    """Part 1 for --recipe fast: whole-process wall time and final accuracy, per seed."""
    rows = []
    seeds = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        if "mnist" in frameworks:
            runs.append(("mnist (this project, candle 0.11.1)", lambda seed: [
                args.binary, "train", *FAST_RECIPE, "--seed", str(seed), "--device", args.device,
                "--data-dir", args.mnist_dir, "--out", os.path.join(tmp, "fast.safetensors")], False))
        if "pytorch" in frameworks:
            runs.append((f"PyTorch {version(args.python, 'torch')}", lambda seed: [
                args.python, os.path.join(here, "pytorch_train.py"), args.mnist_dir,
                *pytorch_layers(args.binary, FAST_RECIPE),
                "--seed", str(seed), "--threads", str(args.threads), "--device", args.device], True))
        for name, command, json_lines in runs:
            walls, accuracies, peak = [], [], 0.0
            for seed in seeds:
                start = time.perf_counter()
                lines, rss = run_rss(command(seed), env)
                walls.append(time.perf_counter() - start)
                if json_lines:
                    last = [json.loads(l) for l in lines if l.startswith("{")][-1]
                    accuracies.append(last["test_accuracy"])
                else:
                    last = [l for l in lines if l.startswith("epoch ")][-1].split()
                    accuracies.append(float(dict(zip(last[0::2], last[1::2]))["test_accuracy"]))
                peak = max(peak, rss)
            rows.append((name, walls, accuracies, peak))

    machine = gpu_name(args.python) if args.device == "cuda" else f"{cpu_name()}, {os.cpu_count()} cores"
    print(f"time-to-99% recipe ({' '.join(FAST_RECIPE)}, batch 32), seeds {args.seeds}, {args.threads} threads, "
          f"{args.device}: {machine}; load average at start {load:.2f}")
    print_comparison(["wall seconds, whole process (median)", "each seed", "test accuracy, each seed"],
                     [(name, walls, ' '.join(f'{a * 100:.2f}%' for a in accuracies), rss)
                      for name, walls, accuracies, rss in rows])


def run_networks(args, here, repo, env, frameworks, load):
    """--recipe networks: per network, seconds per epoch, GFLOP/s, accuracy and RSS in both."""
    epochs = args.epochs or 1
    machine = gpu_name(args.python) if args.device == "cuda" else f"{cpu_name()}, {os.cpu_count()} cores"
    print(f"networks, {epochs} epoch(s), Adam 1e-3, batch 32, {args.threads} threads, {args.device}: {machine}; "
          f"load average at start {load:.2f}")
    print()
    print("| network | run | seconds per epoch (median) | GFLOP/s | test accuracy | peak RSS | time vs this project |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for network in args.networks.split(";"):
            info = summary(args.binary, network)
            # The arithmetic of one epoch: training on 60,000 images, then the test set's forward.
            flop = info["training_flops"] * 60000 + info["forward_flops"] * 10000
            label = info["name"] if info["name"] != "custom" else f"`{info['layers']}`"
            rows = []
            if "mnist" in frameworks:
                flag = "--layers" if "," in network else "--model"
                lines, rss = run_rss([args.binary, "train", flag, network, "--epochs", str(epochs), "--device",
                                      args.device, "--data-dir", args.mnist_dir,
                                      "--out", os.path.join(tmp, "net.safetensors")], env)
                parsed = [dict(zip(l.split()[0::2], l.split()[1::2])) for l in lines if l.startswith("epoch ")]
                rows.append(("mnist", [float(e["seconds"]) for e in parsed], float(parsed[-1]["test_accuracy"]), rss))
            if "pytorch" in frameworks:
                lines, rss = run_rss([args.python, os.path.join(here, "pytorch_train.py"), args.mnist_dir,
                                      "--layers", info["layers"], "--epochs", str(epochs),
                                      "--threads", str(args.threads), "--device", args.device], env)
                parsed = [json.loads(l) for l in lines if l.startswith("{")]
                rows.append((f"PyTorch {version(args.python, 'torch')}", [e["seconds"] for e in parsed],
                             parsed[-1]["test_accuracy"], rss))
            ours = median_of(rows[0][1]) if rows[0][0] == "mnist" else None
            for name, seconds, accuracy, rss in rows:
                med = median_of(seconds)
                ratio = f"{med / ours:.2f}x" if ours else "-"
                print(f"| {label} | {name} | {med:.2f} | {flop / med / 1e9:.0f} | {accuracy * 100:.2f}% "
                      f"| {rss:.0f} MB | {ratio} |", flush=True)

    weights = os.path.join(repo, "weights", "convnet.safetensors")
    ours, theirs = [], []
    if "mnist" in frameworks:
        for _ in range(5):
            lines, _ = run_rss([args.binary, "eval", "--device", args.device, "--weights", weights,
                                "--data-dir", args.mnist_dir, "--json"], env)
            ours.append(json.loads(lines[-1])["seconds"])
    if "pytorch" in frameworks:
        timing = (
            "import sys, time, torch, pytorch_model, pytorch_train as t\n"
            f"torch.set_num_threads({args.threads})\n"
            "model, normalize = pytorch_model.load(sys.argv[1])\n"
            "x = normalize(torch.from_numpy(t.read_idx(sys.argv[2], 't10k-images-idx3-ubyte').copy()).unsqueeze(1))\n"
            "with torch.no_grad():\n"
            "    for _ in range(6):\n"
            "        start = time.perf_counter()\n"
            "        for i in range(0, len(x), 1000):\n"
            "            model(x[i:i + 1000]).argmax(1)\n"
            "        print(time.perf_counter() - start, flush=True)\n"
        )
        lines, _ = run_rss([args.python, "-c", timing, weights, args.mnist_dir], env)
        theirs = [float(l) for l in lines[1:]]  # the first run warms oneDNN up
    print()
    print("| eval of weights/convnet.safetensors: forward passes over the 10,000 test images | median | all runs |")
    print("| --- | --- | --- |")
    if ours:
        print(f"| `mnist eval` | {median_of(ours):.3f} s | {' '.join(f'{e:.3f}' for e in ours)} |")
    if theirs:
        print(f"| PyTorch {version(args.python, 'torch')}, batches of 1000 | {median_of(theirs):.3f} s "
              f"| {' '.join(f'{e:.3f}' for e in theirs)} |")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mnist-dir", required=True)
    p.add_argument("--binary", required=True)
    p.add_argument("--python", default=sys.executable, help="interpreter that has torch (and tensorflow)")
    p.add_argument("--epochs", type=int, help="default: 5 for --recipe tutorial, 1 for networks")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--frameworks", default="mnist,pytorch,tensorflow")
    p.add_argument("--allow-busy", action="store_true")
    p.add_argument("--recipe", default="tutorial", choices=["tutorial", "fast", "networks"])
    p.add_argument("--networks", default=f"convnet;{DEEPER};{WIDER}",
                   help="--recipe networks: shipped names or layer lists, separated by ';'")
    p.add_argument("--seeds", default="42,1,2", help="--recipe fast: one run per seed")
    args = p.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(here)
    frameworks = args.frameworks.split(",")
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads),
               PYTHONPATH=here)

    load = os.getloadavg()[0]
    if load > 0.5 and not args.allow_busy:
        sys.exit(f"1-minute load average is {load:.2f}: something else is running. "
                 "Wait for a quiet machine, or pass --allow-busy (and do not publish the figures).")

    if args.recipe == "fast":
        return run_fast_recipe(args, here, env, frameworks, load)
    if args.recipe == "networks":
        return run_networks(args, here, repo, env, frameworks, load)
    args.epochs = args.epochs or 5

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if "mnist" in frameworks:
            lines, rss = run_rss([args.binary, "train", "--device", args.device, "--epochs", str(args.epochs),
                                  "--data-dir", args.mnist_dir, "--out", os.path.join(tmp, "tutorial.safetensors")], env)
            epochs = [dict(zip(l.split()[0::2], l.split()[1::2])) for l in lines if l.startswith("epoch ")]
            rows.append(("mnist (this project, candle 0.11.1)",
                         [float(e["seconds"]) for e in epochs], float(epochs[-1]["test_accuracy"]), rss))
        if "pytorch" in frameworks:
            lines, rss = run_rss([args.python, os.path.join(here, "pytorch_train.py"), args.mnist_dir,
                                  "--epochs", str(args.epochs), "--threads", str(args.threads),
                                  "--device", args.device], env)
            epochs = [json.loads(l) for l in lines if l.startswith("{")]
            rows.append((f"PyTorch {version(args.python, 'torch')}", [e["seconds"] for e in epochs],
                         epochs[-1]["test_accuracy"], rss))
        if "tensorflow" in frameworks:
            tf = version(args.python, "tensorflow")
            if tf is None:
                sys.exit(f"{args.python} has no tensorflow; install tensorflow-cpu or drop it from --frameworks")
            lines, rss = run_rss([args.python, os.path.join(here, "tensorflow_tutorial.py"), args.mnist_dir,
                                  "--epochs", str(args.epochs), "--threads", str(args.threads)], env)
            epochs = [json.loads(l) for l in lines if l.startswith("{")]
            rows.append((f"TensorFlow {tf} (Keras, the tutorial's code)", [e["seconds"] for e in epochs],
                         epochs[-1]["test_accuracy"], rss))

    machine = gpu_name(args.python) if args.device == "cuda" else f"{cpu_name()}, {os.cpu_count()} cores"
    print(f"tutorial recipe, {args.epochs} epochs, batch 32, {args.threads} threads, {args.device}: {machine}; "
          f"load average at start {load:.2f}")
    print_comparison(["seconds per epoch (median)", "all epochs", "test accuracy"],
                     [(name, seconds, f"{acc * 100:.2f}%", rss) for name, seconds, acc, rss in rows])

    if "mnist" not in frameworks:
        return
    weights = os.path.join(repo, "weights", "tutorial.safetensors")
    evals = []
    for _ in range(5):
        lines, _ = run_rss([args.binary, "eval", "--device", args.device, "--weights", weights,
                            "--data-dir", args.mnist_dir, "--json"], env)
        evals.append(json.loads(lines[-1])["seconds"])
    picture = os.path.join(repo, "tests", "pictures", "00002-digit-2.png")
    walls = []
    for _ in range(10):
        start = time.perf_counter()
        run_rss([args.binary, "predict", "--device", args.device, picture], env)
        walls.append(time.perf_counter() - start)
    print()
    print("| inference (this project) | median | all runs |")
    print("| --- | --- | --- |")
    print(f"| `mnist eval --weights weights/tutorial.safetensors` (tutorial model): forward passes over the 10,000 test images | {median_of(evals):.3f} s "
          f"| {' '.join(f'{e:.3f}' for e in evals)} |")
    print(f"| `mnist predict` of one picture (built-in convnet), wall time including process start | {median_of(walls) * 1e3:.0f} ms "
          f"| {' '.join(f'{w * 1e3:.0f}' for w in walls)} |")


if __name__ == "__main__":
    main()
