"""Any of this project's networks trained in PyTorch with `mnist train`'s recipe, for side-by-side
timing: the same layer list (scripts/pytorch_model.py builds the module from it), the same
normalization (x/255, or MNIST's mean/std for networks with batch norm, as `mnist train`
defaults), the same initialization family (Glorot-uniform kernels, zero biases, batch norm's
scale 1 and shift 0), the same optimizer (Adam, Keras' eps 1e-7), batch 32, shuffled every
epoch, the learning rate multiplied by `--lr-decay` after every epoch. Reads the IDX files with
NumPy. Prints one JSON line per epoch: {"epoch", "seconds", "train_loss", "test_accuracy"}.

`--layers` takes the list as `mnist train --layers` does (default: the tutorial's network; `mnist
summary --model NAME` prints a shipped network's list). The time-to-99% benchmark runs the fast
network with `--epochs 3 --lr 3e-3 --lr-decay 0.2`.

Usage: python scripts/pytorch_train.py MNIST_DIR [--layers LIST] [--epochs 5] [--threads 2]
           [--seed 42] [--device cpu|cuda] [--lr 1e-3] [--lr-decay 1] [--batch-size 32]
"""

import argparse
import gzip
import json
import os
import time

import numpy as np
import torch
from torch import nn

from pytorch_model import Network, default_normalization, parse_layers


def read_idx(dir_, name):
    for candidate in (name + ".gz", name):
        path = os.path.join(dir_, candidate)
        if os.path.exists(path):
            opener = gzip.open if candidate.endswith(".gz") else open
            with opener(path, "rb") as f:
                data = f.read()
            ndim = data[3]
            dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
            return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    raise SystemExit(f"{dir_}: {name}[.gz] not found")


def keras_init(model):
    """Keras' defaults, as `mnist train` draws them: Glorot-uniform weights, zero biases."""
    for layer in model.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return model


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mnist_dir")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the whole split is moved there)")
    parser.add_argument("--layers", default="conv32x3,relu,pool2,flatten,dense128,relu,dense10")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-decay", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)

    layers = parse_layers(args.layers)
    norm = default_normalization(layers)
    mean, std = (norm["mean"], norm["std"]) if norm["kind"] == "mean_std" else (0.0, 1.0)
    train_x = torch.from_numpy(read_idx(args.mnist_dir, "train-images-idx3-ubyte").copy()).float().div_(255).sub_(mean).div_(std).unsqueeze(1)
    train_y = torch.from_numpy(read_idx(args.mnist_dir, "train-labels-idx1-ubyte").astype(np.int64))
    test_x = torch.from_numpy(read_idx(args.mnist_dir, "t10k-images-idx3-ubyte").copy()).float().div_(255).sub_(mean).div_(std).unsqueeze(1)
    test_y = torch.from_numpy(read_idx(args.mnist_dir, "t10k-labels-idx1-ubyte").astype(np.int64))

    train_x, train_y, test_x, test_y = (t.to(device) for t in (train_x, train_y, test_x, test_y))
    model = keras_init(Network(layers)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    batch = args.batch_size
    for epoch in range(1, args.epochs + 1):
        for group in opt.param_groups:
            group["lr"] = args.lr * args.lr_decay ** (epoch - 1)
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(train_x), device=device)
        total = 0.0
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(train_x[idx]), train_y[idx])
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)  # summed on the device: no sync per step
        model.eval()
        with torch.no_grad():
            correct = sum(
                (model(test_x[i:i + 1000]).argmax(1) == test_y[i:i + 1000]).sum().item()
                for i in range(0, len(test_x), 1000)
            )
        seconds = time.perf_counter() - start
        print(json.dumps({
            "epoch": epoch,
            "seconds": round(seconds, 3),
            "train_loss": round(float(total) / len(order), 5),
            "test_accuracy": correct / len(test_x),
        }), flush=True)


if __name__ == "__main__":
    main()
