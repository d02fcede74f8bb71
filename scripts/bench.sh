#!/usr/bin/env bash
# The speed benchmarks: this project against PyTorch and TensorFlow on this machine's CPU, side by
# side in one run, plus this project's inference times (see bench.py for what is timed).
# Installs torch and tensorflow-cpu into a throwaway venv ($BENCH_VENV, default
# /tmp/mnist-bench-venv, kept so a second run does not download them again; PyPI's torch wheel
# pulls its CUDA libraries too, about 5 GB in all).
# Usage: scripts/bench.sh [--epochs N] [--threads N] [--frameworks ...]
#        scripts/bench.sh --recipe fast   # time to 99%: this project and PyTorch
#        scripts/bench.sh --recipe networks   # convnet and two user lists: this project and PyTorch
# MNIST comes from the clone's data/mnist, or from MNIST_DIR when set.
set -euo pipefail
cd "$(dirname "$0")/.."
mnist_dir="${MNIST_DIR:-data/mnist}"
venv="${BENCH_VENV:-/tmp/mnist-bench-venv}"
if ! "$venv/bin/python" -c 'import torch, tensorflow' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check numpy torch tensorflow-cpu
fi
cargo build --release --locked --quiet
# Let the build's processes wind down before timing starts.
sleep 20
exec python3 scripts/bench.py --mnist-dir "$mnist_dir" --binary target/release/mnist --python "$venv/bin/python" "$@"
