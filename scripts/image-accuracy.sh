#!/usr/bin/env bash
# Measures `mnist predict` and `mnist read` on user-style pictures made from MNIST test digits
# (crates/mnist-image/src/synth.rs: 30-400 px, off-centre, inverted or not, grey/RGB/RGBA,
# JPEG 70-95, noise; numbers of 2-7 separated digits) and prints the table of docs/performance.md.
# Usage: scripts/image-accuracy.sh [DIGITS] [NUMBERS] [SEED] [--weights FILE]
# (MNIST's test digits from the clone's data/mnist, or from MNIST_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
digits=${1:-2000}; numbers=${2:-1000}; seed=${3:-5}; shift $(( $# < 3 ? $# : 3 ))
cargo build --release --locked --quiet --bin mnist --example user_images -p mnist -p mnist-image
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
target/release/examples/user_images "$digits" "$numbers" "$dir" "$seed"
# mnist exits 1 when a picture could not be read; the scorer counts those as wrong.
run() { # command, file pattern, then mnist flags
  local command=$1 pattern=$2; shift 2
  find "$dir" -name "$pattern" | sort | xargs -r target/release/mnist "$command" --json "$@" \
    > "$dir/$command.jsonl" 2> "$dir/$command.log" || grep -m1 '^error: model\|^error: reading' "$dir/$command.log" >&2 || true
}
run predict '*-digit-*' "$@"
run read '*-number-*' "$@"
python3 - "$dir" <<'PY'
import json, re, sys
def score(path, key):
    rows = [json.loads(l) for l in open(path)]
    ok = sum(1 for r in rows if str(r.get(key)) == re.search(r"-(?:digit|number)-(\d+)", r["file"]).group(1))
    return ok, len(rows)
print("| command | pictures | exactly right |")
print("| --- | --- | --- |")
for name, key in [("predict", "digit"), ("read", "number")]:
    ok, n = score(f"{sys.argv[1]}/{name}.jsonl", key)
    if n:
        print(f"| `mnist {name}` | {n} | {ok} ({100 * ok / n:.2f}%) |")
PY
