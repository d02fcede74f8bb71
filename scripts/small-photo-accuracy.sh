#!/usr/bin/env bash
# Measures `mnist read` on small pictures of handwriting: the number pictures and blank pages of
# scripts/photo-accuracy.sh (300-1400 px), cut out and shrunk to 40-59, 60-79, 80-99 and
# 100-120 px high (`photos small`), as a photo taken from afar or a thumbnail shows them. Each
# number that `mnist read` reads right at full size is cut out with a margin of 15-50% of its
# height; each blank page is cut at random and must still be refused. Prints the score table of
# each height (docs/photos.md, "Results").
# Usage: scripts/small-photo-accuracy.sh [NUMBERS] [BLANKS] [SEED]
# MNIST_BIN=path/to/mnist scores another build on the same pictures (default
# target/release/mnist).
set -euo pipefail
mnist=$(realpath -m "${MNIST_BIN:-$(dirname "$0")/../target/release/mnist}")
cd "$(dirname "$0")/.."
numbers=${1:-100}; blanks=${2:-100}; seed=${3:-5}
cargo build --release --locked --quiet --bin mnist --example photos -p mnist -p mnist-image
photos=target/release/examples/photos
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
"$photos" write 0 "$numbers" "$blanks" "$dir/pictures" "$seed"
# mnist exits 1 when a picture is refused; the scorer counts that as right for a blank picture
# and wrong for any other.
run() { # folder, output name
  find "$1" -type f | sort | xargs -r "$mnist" read --json > "$dir/$2.jsonl" 2> "$dir/$2.log" \
    || grep -m1 '^error: model\|^error: reading' "$dir/$2.log" >&2 || true
}
run "$dir/pictures" full
for heights in "40 59" "60 79" "80 99" "100 120"; do
  set -- $heights
  "$photos" small "$1" "$2" "$dir/small-$1" "$seed" "$dir/full.jsonl"
  run "$dir/small-$1" "small-$1-read"
  echo "## $1-$2 px high"
  echo
  "$photos" score "$dir/small-$1-read.jsonl"
  echo
done
