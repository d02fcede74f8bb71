#!/usr/bin/env bash
# The full verification: what `cargo test --release` leaves out because it needs tools beyond
# cargo. Run it after that command (CI runs both, .ci/run). Each check fails, never skips, when
# a tool it needs is missing, with a line saying how to install it; all checks run, and the
# script exits 1 if any failed.
#
#   export    ONNX Runtime runs `mnist export`'s models of all three networks, NumPy alone runs
#             the tutorial model from its safetensors file, and state_dicts written by Python
#             evaluate here to the same accuracy (tests/export.rs, ignored by cargo test).
#             Needs python3 with venv; the packages live in target/python-venv.
#   onnx      candle-onnx runs the exported models (scripts/onnx-check, built with that
#             environment's protoc).
#   browser   the drawing page of `mnist serve` in headless Chromium (tests/serve_browser.rs).
#             Needs Chromium, node and npm; playwright-core lives in target/browser-test.
#   fuzz      each libFuzzer target for 30 s (scripts/fuzz.sh; the pinned nightly, cargo-fuzz).
#   cuda      the CUDA build type-checks, tests/gpu.rs included (scripts/cuda-check.sh; nvcc).
#   metal     the Metal build type-checks for aarch64-apple-darwin (its rustup target), without
#             the downloader, whose TLS needs Apple's C toolchain.
#
# Usage: scripts/verify-all.sh [--install] [--tidy] [CHECK...]  (default: every check, in order)
#   --install   first install what is missing: the Python environment (PyPI), playwright-core
#               (npm) and, when running as root with apt-get, Chromium; the pinned nightly,
#               cargo-fuzz and the Metal target (rustup, cargo install); a compile-only CUDA
#               toolkit (PyPI). CI passes it. Nothing here ever calls sudo.
#   --tidy      delete each check's own build folder once it ran (target/onnx-check,
#               fuzz/target, target/cuda-check, target/metal-check), so the run never holds
#               them all at once; the next run rebuilds them. CI passes it.
set -uo pipefail
cd "$(dirname "$0")/.."

install=0
tidy=0
checks=()
for arg in "$@"; do
  case "$arg" in
    --install) install=1 ;;
    --tidy) tidy=1 ;;
    export | onnx | browser | fuzz | cuda | metal) checks+=("$arg") ;;
    *) echo "usage: $0 [--install] [--tidy] [export|onnx|browser|fuzz|cuda|metal ...]" >&2; exit 2 ;;
  esac
done
[[ ${#checks[@]} -gt 0 ]] || checks=(export onnx browser fuzz cuda metal)
METAL_TARGET=aarch64-apple-darwin

# Each check_* prints what it does and returns non-zero on failure; a missing tool is one
# `error:` line.
check_export() {
  if [[ $install == 1 ]]; then scripts/python-venv.sh > /dev/null || return 1; fi
  scripts/python-venv.sh --check || return 1
  cargo test --release --locked --test export -- --ignored onnx_runtime numpy_alone a_state_dict
}
check_onnx() {
  if [[ $install == 1 ]]; then scripts/python-venv.sh > /dev/null || return 1; fi
  scripts/python-venv.sh --check || return 1
  cargo test --release --locked --test export -- --ignored candle_onnx
}
check_browser() {
  if [[ $install == 1 ]]; then scripts/browser-test.sh --setup || return 1; fi
  cargo test --release --locked --test serve_browser -- --ignored
}
check_fuzz() {
  if [[ $install == 1 ]]; then scripts/fuzz.sh --setup || return 1; fi
  # A smoke run: opt-level 1 builds the instrumented targets in less time than 3, and 30 s still
  # runs each target thousands of times or more (the long runs of scripts/fuzz.sh keep 3).
  CARGO_PROFILE_RELEASE_OPT_LEVEL=1 scripts/fuzz.sh 30
}
check_cuda() {
  if [[ $install == 1 ]]; then scripts/cuda-check.sh --setup || return 1; fi
  scripts/cuda-check.sh
}
check_metal() {
  if ! rustup target list --installed | grep -qx "$METAL_TARGET"; then
    if [[ $install == 1 ]]; then
      rustup target add "$METAL_TARGET" || return 1
    else
      echo "error: metal: the $METAL_TARGET target is missing; install it with: rustup target add $METAL_TARGET" >&2
      return 1
    fi
  fi
  CARGO_TARGET_DIR=target/metal-check cargo check --release --locked --workspace \
    --target "$METAL_TARGET" --no-default-features --features metal
}

# The build folder each check keeps for itself (the others share target/release).
build_folder() {
  case "$1" in
    onnx) echo target/onnx-check ;;
    fuzz) echo fuzz/target ;;
    cuda) echo target/cuda-check ;;
    metal) echo target/metal-check ;;
  esac
}

results=()
failed=0
for check in "${checks[@]}"; do
  echo "== verify: $check" >&2
  start=$SECONDS
  if "check_$check"; then
    results+=("$(printf '%-8s passed  %4d s' "$check" $((SECONDS - start)))")
  else
    results+=("$(printf '%-8s FAILED  %4d s' "$check" $((SECONDS - start)))")
    failed=1
  fi
  folder=$(build_folder "$check")
  if [[ $tidy == 1 && -n $folder && -d $folder ]]; then
    echo "== verify: removing $folder ($(du -sh "$folder" | cut -f1))" >&2
    rm -rf "$folder"
  fi
done
echo "== verify: summary" >&2
printf '%s\n' "${results[@]}" >&2
exit $failed
