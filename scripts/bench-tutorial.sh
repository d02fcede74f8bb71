#!/usr/bin/env bash
# Benchmarks the tutorial recipe against PyTorch on this machine's CPU (see bench_tutorial.py).
# Installs torch into a throwaway venv (kept in $BENCH_VENV, default /tmp/mnist-bench-venv, so a
# second run does not download it again). Usage: scripts/bench-tutorial.sh [--epochs N] [--threads N]
set -euo pipefail
cd "$(dirname "$0")/.."
: "${MNIST_DIR:?set MNIST_DIR to the folder holding the MNIST IDX files}"
venv="${BENCH_VENV:-/tmp/mnist-bench-venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import torch' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check torch numpy
fi
cargo build --release --quiet
exec python3 scripts/bench_tutorial.py --mnist-dir "$MNIST_DIR" --binary target/release/mnist --python "$venv/bin/python" "$@"
