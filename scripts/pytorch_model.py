"""This project's architectures as PyTorch modules, and a loader for its safetensors files.

The files already use PyTorch's names and layouts (conv weights [out, in, k, k], linear weights
[out, in], batch-norm buffers with num_batches_tracked), so loading is a strict
load_state_dict; the architecture, its config and the input normalization come from the file's
metadata. Needs torch and safetensors.

    import pytorch_model
    model, normalize = pytorch_model.load("weights/convnet.safetensors")
    logits = model(normalize(pixels))   # pixels: uint8 or float 0-255, [n, 1, 28, 28]

Command line: evaluate a file on the MNIST test set, and optionally save the plain state_dict
(the way a model trained in PyTorch would be saved) for `mnist eval --model NAME`:

    python scripts/pytorch_model.py WEIGHTS.safetensors MNIST_DIR [--save-state-dict OUT]
"""

import argparse
import json

import torch
from torch import nn


class SeedNet(nn.Module):
    """The Keras tutorial's CNN (mnist's `seed`): conv 3x3, ReLU, max-pool 2, dense, ReLU, dense."""

    def __init__(self, conv_channels=32, hidden=128):
        super().__init__()
        self.conv1 = nn.Conv2d(1, conv_channels, 3)
        self.fc1 = nn.Linear(conv_channels * 13 * 13, hidden)
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


class FastNet(nn.Module):
    """mnist's `fast`: two conv 3x3 layers, each with ReLU and max-pool 2, then dense, ReLU, dense."""

    def __init__(self, conv1_channels=16, conv2_channels=32, hidden=128):
        super().__init__()
        self.conv1 = nn.Conv2d(1, conv1_channels, 3)
        self.conv2 = nn.Conv2d(conv1_channels, conv2_channels, 3)
        self.fc1 = nn.Linear(conv2_channels * 5 * 5, hidden)
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


class ConvNet(nn.Module):
    """mnist's `convnet`: two blocks of two bias-free 3x3 convolutions with batch norm, then a
    dense layer with batch norm."""

    def __init__(self, block1_channels=32, block2_channels=64, hidden=256):
        super().__init__()
        c1, c2 = block1_channels, block2_channels
        self.conv1, self.bn1 = nn.Conv2d(1, c1, 3, bias=False), nn.BatchNorm2d(c1)
        self.conv2, self.bn2 = nn.Conv2d(c1, c1, 3, bias=False), nn.BatchNorm2d(c1)
        self.conv3, self.bn3 = nn.Conv2d(c1, c2, 3, bias=False), nn.BatchNorm2d(c2)
        self.conv4, self.bn4 = nn.Conv2d(c2, c2, 3, bias=False), nn.BatchNorm2d(c2)
        self.fc1, self.bn5 = nn.Linear(c2 * 4 * 4, hidden, bias=False), nn.BatchNorm1d(hidden)
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.max_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)
        x = torch.relu(self.bn3(self.conv3(x)))
        x = torch.max_pool2d(torch.relu(self.bn4(self.conv4(x))), 2)
        x = torch.relu(self.bn5(self.fc1(x.flatten(1))))
        return self.fc2(x)


ARCHITECTURES = {"seed": SeedNet, "convnet": ConvNet, "fast": FastNet}


def normalizer(normalization):
    """The file's input transform for 0-255 pixels, as `mnist train` applied it."""
    if normalization["kind"] == "unit":
        return lambda pixels: pixels.float() / 255
    mean, std = normalization["mean"], normalization["std"]
    return lambda pixels: (pixels.float() / 255 - mean) / std


def load(path, architecture=None):
    """(module in eval mode, normalize) for a file written by `mnist train`. `architecture`
    ("seed", "convnet" or "fast", default config) is needed only for files without mnist metadata."""
    from safetensors import safe_open  # here, so the modules above need only torch
    from safetensors.torch import load_file

    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
    if "mnist.model_config" in meta:
        spec = json.loads(meta["mnist.model_config"])
        model = ARCHITECTURES[spec["name"]](**spec["config"])
        normalize = normalizer(json.loads(meta["mnist.normalization"]))
    elif architecture is not None:
        model = ARCHITECTURES[architecture]()
        normalize = normalizer({"kind": "unit"} if architecture in ("seed", "fast") else {"kind": "mean_std", "mean": 0.1307, "std": 0.3081})
    else:
        raise SystemExit(f"{path}: no mnist metadata; say which architecture it holds")
    state = {k: v for k, v in load_file(path).items() if not k.startswith("optim.")}
    model.load_state_dict(state, strict=True)
    return model.eval(), normalize


def main():
    from pytorch_tutorial import read_idx  # the same IDX reader as the timing benchmark

    parser = argparse.ArgumentParser()
    parser.add_argument("weights")
    parser.add_argument("mnist_dir")
    parser.add_argument("--save-state-dict", metavar="OUT")
    args = parser.parse_args()
    model, normalize = load(args.weights)
    images = torch.from_numpy(read_idx(args.mnist_dir, "t10k-images-idx3-ubyte").copy()).unsqueeze(1)
    labels = torch.from_numpy(read_idx(args.mnist_dir, "t10k-labels-idx1-ubyte").astype("int64"))
    with torch.no_grad():
        predicted = torch.cat([model(normalize(images[i : i + 1000])).argmax(1) for i in range(0, len(images), 1000)])
    correct = int((predicted == labels).sum())
    print(f"torch {torch.__version__}: {args.weights}: accuracy {correct / len(labels):.4f} ({correct}/{len(labels)})")
    if args.save_state_dict:
        from safetensors.torch import save_file

        save_file(model.state_dict(), args.save_state_dict)
        print(f"saved the state_dict to {args.save_state_dict}")


if __name__ == "__main__":
    main()
