#!/usr/bin/env bash
# The training-report figures of docs/commands.md (docs/report/*.png): trains the tutorial recipe with
# the command behind weights/tutorial.safetensors (tutorial model, seed 42, 5 epochs on the CPU: about two
# minutes on 2 cores) with --metrics and --report, checks that it reached the shipped file's test
# accuracy (CPU runs are deterministic), and copies the PNGs. The whole report, with its SVGs
# and index.html, stays in target/report-figures/report/.
#   scripts/report-figures.sh      (MNIST from the clone's data/mnist, or MNIST_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=target/report-figures
rm -rf "$OUT"
mkdir -p "$OUT" docs/report
cargo build --release --locked --quiet
target/release/mnist train --device cpu --seed 42 --out "$OUT/tutorial.safetensors" \
    --metrics "$OUT/metrics.jsonl" --report "$OUT/report" | tee "$OUT/train.txt"
ours=$(grep '^epoch 5/5' "$OUT/train.txt" | awk '{for (i = 1; i < NF; i++) if ($i == "test_accuracy") print $(i + 1)}')
shipped=$(target/release/mnist eval --device cpu --json --weights weights/tutorial.safetensors \
    | python3 -c 'import json, sys; print("%.4f" % json.load(sys.stdin)["accuracy"])')
if [ "$ours" != "$shipped" ]; then
    echo "error: this run reached test accuracy $ours, weights/tutorial.safetensors $shipped; the figures would not describe the shipped model" >&2
    exit 1
fi
cp "$OUT"/report/*.png docs/report/
echo "test accuracy $ours, as weights/tutorial.safetensors; figures in docs/report/, the whole report in $OUT/report/index.html"
