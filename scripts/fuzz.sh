#!/usr/bin/env bash
# Fuzzes the three readers of untrusted bytes with libFuzzer (cargo-fuzz, nightly Rust): the IDX
# reader, the checkpoint loader and image decoding plus preprocessing. Each target runs for
# SECONDS (default 600) from the committed seed corpus (fuzz/corpus/TARGET); what it discovers
# is kept in target/fuzz-corpus/TARGET, crashes in fuzz/artifacts/TARGET (turn each into a
# regression test under tests/corpus/). Exits non-zero on the first crash.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (needs: cargo install cargo-fuzz; rustup nightly)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(idx checkpoint image)
for target in "${targets[@]}"; do
  mkdir -p "target/fuzz-corpus/$target"
  echo "== fuzz $target for ${seconds}s" >&2
  # 2 GB of memory and 20 s per input at most: more is a finding, not a slow input.
  cargo +nightly fuzz run --fuzz-dir fuzz --release "$target" \
    "target/fuzz-corpus/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 -max_len=65536 -print_final_stats=1
done
