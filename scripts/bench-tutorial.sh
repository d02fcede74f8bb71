#!/usr/bin/env bash
# The speed benchmark: this project against PyTorch and TensorFlow on this machine's CPU, side by
# side in one run, plus this project's inference times (see bench_tutorial.py for what is timed).
# Installs torch and tensorflow-cpu into a throwaway venv ($BENCH_VENV, default
# /tmp/mnist-bench-venv, kept so a second run does not download them again; PyPI's torch wheel
# pulls its CUDA libraries too, about 5 GB in all).
# Usage: MNIST_DIR=... scripts/bench-tutorial.sh [--epochs N] [--threads N] [--frameworks ...]
#        MNIST_DIR=... scripts/bench-tutorial.sh --recipe fast   # time to 99%: this project and PyTorch
set -euo pipefail
cd "$(dirname "$0")/.."
: "${MNIST_DIR:?set MNIST_DIR to the folder holding the MNIST IDX files}"
venv="${BENCH_VENV:-/tmp/mnist-bench-venv}"
if ! "$venv/bin/python" -c 'import torch, tensorflow' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check numpy torch tensorflow-cpu
fi
cargo build --release --quiet
# Let the build's processes wind down before timing starts.
sleep 20
exec python3 scripts/bench_tutorial.py --mnist-dir "$MNIST_DIR" --binary target/release/mnist --python "$venv/bin/python" "$@"
