#!/usr/bin/env bash
# Regenerates the README's example pictures in tests/pictures/ (user-style pictures made from
# MNIST test digits by crates/mnist-image/examples/user_images.rs, seed 4) and prints what
# `mnist predict` and `mnist read` say about them: the output pasted in the README.
# Usage: MNIST_DIR=../shared/data/mnist scripts/example-pictures.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin mnist --example user_images -p mnist -p mnist-image
rm -rf tests/pictures
target/release/examples/user_images 5 3 tests/pictures 4
target/release/mnist predict tests/pictures/*-digit-*
target/release/mnist read tests/pictures/*-number-*
