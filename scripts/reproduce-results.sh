#!/usr/bin/env bash
# Reproduces the accuracy table of docs/performance.md: trains the tutorial recipe, the time-to-99% recipe,
# the convnet recipe and the pen-stroke recipe (weights/pen.safetensors) on the CPU with seed 42,
# the pen-stroke recipe again with seed 7 (weights/pen-7.safetensors), and prints one markdown
# row per model.
# Takes about a minute (tutorial and fast) plus about 13 minutes (convnet) on a quiet 2-core
# machine; pen took 23.8 minutes on 2 cores beside other work, pen-7 9.1 minutes.
# Usage: scripts/reproduce-results.sh [OUT_DIR]   (default runs/; the data: --data-dir's default,
# the clone's data/mnist unless MNIST_DIR names another folder)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs}"
mkdir -p "$out"
cargo build --release --locked --quiet
mnist=target/release/mnist

train() { # name, seed, then train flags
  local name=$1 seed=$2; shift 2
  rm -f "$out/$name.jsonl"
  local start=$SECONDS
  "$mnist" train --device cpu --seed "$seed" --out "$out/$name.safetensors" --metrics "$out/$name.jsonl" "$@" >&2
  echo $((SECONDS - start))
}

tutorial_s=$(train tutorial 42)
fast_s=$(train fast 42 --model fast --epochs 3 --lr 3e-3 --lr-decay 0.2)
convnet_s=$(train convnet 42 --model convnet --augment --epochs 20 --lr-decay 0.8)
pen_s=$(train pen 42 --model convnet --augment --pen-strokes 1.0 --epochs 20 --lr-decay 0.8)
pen7_s=$(train pen-7 7 --model convnet --augment --pen-strokes 1.0 --epochs 20 --lr-decay 0.8)

echo "| model | command | test accuracy | epochs | wall time | median s/epoch |"
echo "| --- | --- | --- | --- | --- | --- |"
row() { # name, command text, wall seconds
  python3 - "$out/$1.jsonl" "$1" "$2" "$3" <<'PY'
import json, statistics, sys
path, name, cmd, wall = sys.argv[1:]
rows = [json.loads(l) for l in open(path)]
med = statistics.median(r["seconds"] for r in rows)
print(f"| {name} | `{cmd}` | {rows[-1]['test_accuracy'] * 100:.2f}% | {rows[-1]['epoch']} | {int(wall) / 60:.1f} min | {med:.1f} |")
PY
}
row tutorial "mnist train" "$tutorial_s"
row fast "mnist train --model fast --epochs 3 --lr 3e-3 --lr-decay 0.2" "$fast_s"
row convnet "mnist train --model convnet --augment --epochs 20 --lr-decay 0.8" "$convnet_s"
row pen "mnist train --model convnet --augment --pen-strokes 1.0 --epochs 20 --lr-decay 0.8" "$pen_s"
row pen-7 "mnist train --model convnet --augment --pen-strokes 1.0 --epochs 20 --lr-decay 0.8 --seed 7" "$pen7_s"
"$mnist" eval --device cpu --weights "$out/convnet.safetensors" --json >&2
