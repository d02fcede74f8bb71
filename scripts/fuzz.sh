#!/usr/bin/env bash
# Fuzzes the three readers of untrusted bytes with libFuzzer (cargo-fuzz, nightly Rust): the IDX
# reader, the checkpoint loader and image decoding plus preprocessing. Each target runs for
# SECONDS (default 600) from the committed seed corpus (fuzz/corpus/TARGET); what it discovers
# is kept in target/fuzz-corpus/TARGET, crashes in fuzz/artifacts/TARGET (turn each into a
# regression test under tests/corpus/). Exits non-zero on the first crash.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#   scripts/fuzz.sh --setup    installs the nightly pinned in fuzz/rust-toolchain.toml and
#                              cargo-fuzz (rustup and cargo install, no root)
set -euo pipefail
cd "$(dirname "$0")/.."
toolchain=$(sed -n 's/^channel = "\(.*\)"$/\1/p' fuzz/rust-toolchain.toml)
cargo_fuzz_version=0.13.2

if [[ "${1:-}" == --setup ]]; then
  rustup toolchain list | grep -q "^$toolchain" || rustup toolchain install "$toolchain" --profile minimal
  if [[ "$(cargo fuzz --version 2> /dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]]; then
    cargo install cargo-fuzz --locked --version "$cargo_fuzz_version"
  fi
  exit 0
fi
if ! rustup toolchain list | grep -q "^$toolchain"; then
  echo "error: fuzz: the pinned nightly is missing; install it with: rustup toolchain install $toolchain --profile minimal" >&2
  exit 1
fi
if ! cargo fuzz --version > /dev/null 2>&1; then
  echo "error: fuzz: cargo-fuzz is missing; install it with: cargo install cargo-fuzz --locked --version $cargo_fuzz_version" >&2
  exit 1
fi
seconds=${1:-600}
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(idx checkpoint image)
# cargo-fuzz has no --locked: check fuzz/Cargo.lock here, so the build below cannot rewrite it.
cargo "+$toolchain" fetch --locked --quiet --manifest-path fuzz/Cargo.toml
for target in "${targets[@]}"; do
  mkdir -p "target/fuzz-corpus/$target"
  echo "== fuzz $target for ${seconds}s" >&2
  # 2 GB of memory and 20 s per input at most: more is a finding, not a slow input.
  cargo "+$toolchain" fuzz run --fuzz-dir fuzz --release "$target" \
    "target/fuzz-corpus/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 -max_len=65536 -print_final_stats=1
done
