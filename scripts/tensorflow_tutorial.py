"""The Keras tutorial recipe in TensorFlow, for side-by-side timing with `mnist train`.

The tutorial's own code: Conv2D(32, 3, relu) -> MaxPooling2D -> Flatten -> Dense(128, relu) ->
Dense(10), x/255, Adam (Keras defaults: lr 1e-3, eps 1e-7), sparse categorical cross-entropy on
logits, `model.fit(batch_size=32, shuffle=True)`. The test set is evaluated inside each epoch
(`validation_data`), as `mnist train` and scripts/pytorch_train.py do, so the epoch times
compare like with like. Reads the IDX files with NumPy. Prints one JSON line per epoch:
{"epoch", "seconds", "train_loss", "test_accuracy"}.

Usage: python scripts/tensorflow_tutorial.py MNIST_DIR [--epochs 5] [--threads 2] [--seed 42]
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pytorch_train import read_idx  # noqa: E402  (the same IDX reader for both)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mnist_dir")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    tf.keras.utils.set_random_seed(args.seed)

    x_train = read_idx(args.mnist_dir, "train-images-idx3-ubyte")[..., None].astype("float32") / 255.0
    y_train = read_idx(args.mnist_dir, "train-labels-idx1-ubyte").astype("int64")
    x_test = read_idx(args.mnist_dir, "t10k-images-idx3-ubyte")[..., None].astype("float32") / 255.0
    y_test = read_idx(args.mnist_dir, "t10k-labels-idx1-ubyte").astype("int64")

    model = tf.keras.Sequential([
        tf.keras.Input(shape=(28, 28, 1)),
        tf.keras.layers.Conv2D(32, 3, activation="relu"),
        tf.keras.layers.MaxPooling2D(),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(128, activation="relu"),
        tf.keras.layers.Dense(10),
    ])
    model.compile(
        optimizer=tf.keras.optimizers.Adam(),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )

    class EpochTimer(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            print(json.dumps({
                "epoch": epoch + 1,
                "seconds": round(time.perf_counter() - self.start, 3),
                "train_loss": round(float(logs["loss"]), 5),
                "test_accuracy": float(logs["val_accuracy"]),
            }), flush=True)

    model.fit(x_train, y_train, batch_size=32, epochs=args.epochs, shuffle=True,
              validation_data=(x_test, y_test), validation_batch_size=1000,
              callbacks=[EpochTimer()], verbose=0)


if __name__ == "__main__":
    main()
