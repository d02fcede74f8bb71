#!/usr/bin/env bash
# Regenerates the example pictures in tests/pictures/ (user-style pictures made from MNIST test
# digits by crates/mnist-image/examples/user_images.rs, seed 4) and prints what `mnist predict`
# and `mnist read` say about them: the output shown in the README and docs/commands.md.
# Usage: scripts/example-pictures.sh   (MNIST from the clone's data/mnist, or from MNIST_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet --bin mnist --example user_images -p mnist -p mnist-image
rm -rf tests/pictures
target/release/examples/user_images 5 3 tests/pictures 4
target/release/mnist predict tests/pictures/*-digit-*
target/release/mnist read tests/pictures/*-number-*
