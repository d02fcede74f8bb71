#!/usr/bin/env bash
# The CUDA compile check: `cargo check --features cuda` of every crate and target (tests/gpu.rs
# included) on a machine with no GPU and no driver. nvcc compiles candle's kernels in the build
# scripts; nothing is linked, so no driver or cuBLAS is needed.
#   scripts/cuda-check.sh           uses nvcc from PATH (a CUDA 12 or 13 toolkit), else the
#                                   compile-only toolkit --setup made; fails when there is neither
#   scripts/cuda-check.sh --setup   fetches that compile-only toolkit: CUDA 13.4's nvcc, headers
#                                   and runtime as NVIDIA's PyPI wheels (about 127 MB, no root)
#                                   into ~/.cache/mnist-cuda13 ($XDG_CACHE_HOME if set)
# Why these wheels: the CUDA 12 nvcc wheels hold only ptxas and libnvvm, not the nvcc driver;
# CUDA 13's nvcc, nvvm and crt wheels make a complete nvcc. 13.4 because cudarc 0.19.10 (through
# candle 0.11.1) knows CUDA up to 13.4 and panics on newer ones. Installed with --no-deps, or pip
# pulls the newest nvvm/crt/runtime beside the pinned nvcc.
# A cold check takes about 11 minutes on 2 cores, most of it in nvcc.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="${XDG_CACHE_HOME:-$HOME/.cache}/mnist-cuda13"
version=13.4.92
wheels=("nvidia-cuda-nvcc==$version" "nvidia-nvvm==$version" "nvidia-cuda-crt==$version"
        "nvidia-cuda-runtime==$version" "nvidia-cuda-cccl==13.3.5.0.6")
stamp="$prefix/.mnist-wheels"

if [[ "${1:-}" == --setup ]]; then
  if [[ -f "$stamp" && "$(cat "$stamp")" == "${wheels[*]}" ]]; then exit 0; fi
  if ! python3 -c 'import venv, ensurepip' 2> /dev/null; then
    echo "error: cuda: python3 with its venv module is needed to fetch the toolkit (Debian: apt-get install python3-venv)" >&2
    exit 1
  fi
  rm -rf "$prefix"
  python3 -m venv "$prefix/venv"
  "$prefix/venv/bin/pip" install --quiet --no-deps --disable-pip-version-check "${wheels[@]}"
  echo "${wheels[*]}" > "$stamp"
  exit 0
fi

if ! command -v nvcc > /dev/null; then
  if [[ ! -f "$stamp" || "$(cat "$stamp")" != "${wheels[*]}" ]]; then
    echo "error: cuda: no nvcc on PATH; install the CUDA toolkit, or fetch a compile-only one from PyPI with: scripts/cuda-check.sh --setup" >&2
    exit 1
  fi
  site=$("$prefix/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  cuda="$site/nvidia/cu13"
  export PATH="$cuda/bin:$PATH" CUDA_HOME="$cuda" CUDA_PATH="$cuda" CUDA_ROOT="$cuda" CUDA_TOOLKIT_ROOT_DIR="$cuda"
fi
# No nvidia-smi to ask: compile for Hopper (sm_90) unless told otherwise.
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
echo "nvcc: $(nvcc --version | tail -1)" >&2
CARGO_TARGET_DIR=target/cuda-check cargo check --release --locked --features cuda --workspace --all-targets
