#!/usr/bin/env bash
# Measures `mnist predict` and `mnist read` on the photo-like pictures of issue 17
# (crates/mnist-image/src/synth/photo.rs: MNIST test digits drawn as 1-4 px pen lines on
# 300-1400 px pictures of plain, ruled, squared and recycled paper, blue ink, shadows, uneven
# light, a margin line, all combined, out of focus, a page lying on a table, a page photographed
# at a slant; blank pages that must be refused) and prints the accuracy table of docs/photos.md.
# Counts are per condition. Beside each condition's score it prints the same models' score on
# the pictures' MNIST digits as they are (plain, dark on white): what MNIST's own ambiguous digits
# cost, apart from what the photo costs. A second table sets, for the pictures
# with printed lines (rules, a grid, a margin line), their score beside the score of the same
# pictures drawn without the lines: what the paper's lines cost, apart from the pen line.
# Usage: scripts/photo-accuracy.sh [DIGITS] [NUMBERS] [BLANKS] [SEED] [--weights FILE]
# DIGITS_FROM=fonts draws the digits from sixteen handwriting fonts instead of MNIST's test set
# (crates/mnist-image/src/synth/fonts.rs): writing a person reads at a glance, where some of
# MNIST's thinned digits are not (docs/photos.md).
# MNIST_BIN=path/to/mnist scores another build on the same pictures (another commit's, built in
# its own worktree; default target/release/mnist).
set -euo pipefail
mnist=$(realpath -m "${MNIST_BIN:-$(dirname "$0")/../target/release/mnist}")
cd "$(dirname "$0")/.."
digits=${1:-500}; numbers=${2:-200}; blanks=${3:-100}; seed=${4:-17}; shift $(( $# < 4 ? $# : 4 ))
cargo build --release --locked --quiet --bin mnist --example photos -p mnist -p mnist-image
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
case ${DIGITS_FROM:-mnist} in
  mnist) source=() ;;
  fonts) source=(--fonts) ;;
  *) echo "error: DIGITS_FROM must be mnist or fonts, not '$DIGITS_FROM'" >&2; exit 2 ;;
esac
target/release/examples/photos write "${source[@]}" "$digits" "$numbers" "$blanks" "$dir/pictures" "$seed" "$dir/originals" "$dir/unruled"
# mnist exits 1 when a picture is refused; the scorer counts that as right for a blank picture
# and wrong for any other.
run() { # command, output name, folder, file pattern, then mnist flags
  local command=$1 out=$2 folder=$3 pattern=$4; shift 4
  find "$dir/$folder" -name "$pattern" | sort | xargs -r "$mnist" "$command" --json "$@" \
    > "$dir/$out.jsonl" 2> "$dir/$out.log" || grep -m1 '^error: model\|^error: reading' "$dir/$out.log" >&2 || true
}
run predict predict pictures '*-digit-*' "$@"
run read read pictures '*-number-*' "$@"
run predict blank-predict pictures '*-blank-*' "$@"
run read blank-read pictures '*-blank-*' "$@"
run predict originals-predict originals '*-digit-*' "$@"
run read originals-read originals '*-number-*' "$@"
run predict unruled-predict unruled '*-digit-*' "$@"
run read unruled-read unruled '*-number-*' "$@"
target/release/examples/photos score "$dir"/{predict,read,blank-predict,blank-read,originals-predict,originals-read,unruled-predict,unruled-read}.jsonl
