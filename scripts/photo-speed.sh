#!/usr/bin/env bash
# Times `mnist predict` of one 12-megapixel photo (4000x3000 JPEG, `examples/photos big`: a
# picture of one condition, combined by default, enlarged the way a phone camera would have
# taken it), wall clock including process start, as issue 17 asks (under 300 ms). Binaries are
# run in turn, RUNS times each, so that all see the same load on a shared machine; prints each
# one's median and quartiles, and what it read.
# Usage: scripts/photo-speed.sh [--condition CONDITION] [RUNS] [MNIST_BINARY...]
# (default: the combined condition, 21 runs, target/release/mnist; `--condition slanted` times a
# page photographed at a slant, which is also seen from above; to compare with another commit,
# build it in its own worktree and pass both binaries).
set -euo pipefail
cd "$(dirname "$0")/.."
condition=combined
if [[ "${1:-}" == --condition ]]; then
  condition=${2:?--condition needs a condition, e.g. slanted}; shift 2
fi
runs=${1:-21}; shift $(( $# < 1 ? $# : 1 ))
binaries=("$@"); [ ${#binaries[@]} -gt 0 ] || binaries=(target/release/mnist)
cargo build --release --locked --quiet --bin mnist --example photos -p mnist -p mnist-image
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
written=$(target/release/examples/photos big "$condition" "$dir/photo.jpg" 1)
echo "photo: $condition, 4000x3000 JPEG, $(( $(stat -c %s "$dir/photo.jpg") / 1024 )) KiB, digit $written written"
for _ in $(seq "$runs"); do
  for b in "${!binaries[@]}"; do
    start=$(date +%s%N)
    "${binaries[$b]}" predict "$dir/photo.jpg" > "$dir/out-$b" 2>/dev/null || true
    echo "$b $(( ($(date +%s%N) - start) / 1000 ))" >> "$dir/times"
  done
done
for b in "${!binaries[@]}"; do
  read -r q1 median q3 < <(awk -v b="$b" '$1 == b { print $2 }' "$dir/times" | sort -n |
    awk '{ t[NR] = $1 } END { printf "%d %d %d\n", t[int((NR + 3) / 4)] / 1000, t[int((NR + 1) / 2)] / 1000, t[int((3 * NR + 1) / 4)] / 1000 }')
  said=$(cut -d' ' -f2 "$dir/out-$b")
  echo "${binaries[$b]}: median $median ms (quartiles $q1-$q3 ms, $runs runs), read: ${said:-refused}"
done
