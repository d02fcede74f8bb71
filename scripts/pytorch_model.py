"""This project's networks as PyTorch modules, built from the layer list a checkpoint records,
and a loader for its safetensors files.

A network is a list of layers (`conv32x3,relu,pool2,flatten,dense128,relu,dense10`; see
docs/layers.md): `conv<N>x<K>` is nn.Conv2d(in, N, K), `bn` a BatchNorm2d or BatchNorm1d of the
layer before, `relu`, `pool2` nn.MaxPool2d(2), `flatten`, `dense<N>` nn.Linear(in, N). Conv and
dense layers carry a bias unless `bn` follows them; parameters are named conv1, conv2, ..., bn1,
..., fc1, ... in order, so a file's tensors load with a strict load_state_dict. Needs torch and
safetensors.

    import pytorch_model
    model, normalize = pytorch_model.load("weights/convnet.safetensors")
    logits = model(normalize(pixels))   # pixels: uint8 or float 0-255, [n, 1, 28, 28]

Command line: evaluate a file on the MNIST test set, and optionally save the plain state_dict
(the way a model trained in PyTorch would be saved) for `mnist eval --layers LIST`:

    python scripts/pytorch_model.py WEIGHTS.safetensors MNIST_DIR [--save-state-dict OUT]
"""

import argparse
import json
import re

import torch
from torch import nn

IMAGE_SIDE = 28


def parse_layers(text):
    """The layers of a list given as text (commas, spaces or newlines between them)."""
    return [token for token in re.split(r"[,\s]+", text.strip()) if token]


class Network(nn.Module):
    """The network a layer list describes, with the project's parameter names."""

    def __init__(self, layers):
        super().__init__()
        self.layers = list(layers)
        self.steps = []
        channels, side, flat = 1, IMAGE_SIDE, None
        counts = {"conv": 0, "bn": 0, "fc": 0}
        for i, layer in enumerate(self.layers):
            bias = not (i + 1 < len(self.layers) and self.layers[i + 1] == "bn")
            if m := re.fullmatch(r"conv(\d+)x(\d+)", layer):
                out, kernel = int(m[1]), int(m[2])
                counts["conv"] += 1
                name = f"conv{counts['conv']}"
                setattr(self, name, nn.Conv2d(channels, out, kernel, bias=bias))
                self.steps.append(name)
                channels, side = out, side - kernel + 1
            elif m := re.fullmatch(r"dense(\d+)", layer):
                out = int(m[1])
                counts["fc"] += 1
                name = f"fc{counts['fc']}"
                setattr(self, name, nn.Linear(flat, out, bias=bias))
                self.steps.append(name)
                flat = out
            elif layer == "bn":
                counts["bn"] += 1
                name = f"bn{counts['bn']}"
                norm = nn.BatchNorm1d(flat) if flat is not None else nn.BatchNorm2d(channels)
                setattr(self, name, norm)
                self.steps.append(name)
            elif layer == "relu":
                self.steps.append(torch.relu)
            elif layer == "pool2":
                self.steps.append(lambda x: torch.max_pool2d(x, 2))
                side //= 2
            elif layer == "flatten":
                self.steps.append(lambda x: x.flatten(1))
                flat = channels * side * side
            else:
                raise ValueError(f"layer {i + 1}: unknown layer {layer!r}")

    def forward(self, x):
        for step in self.steps:
            x = getattr(self, step)(x) if isinstance(step, str) else step(x)
        return x


def legacy_layers(spec):
    """The layer list of a file written before networks were layer lists (mnist format 1), which
    recorded a named network and its widths; the same mapping as mnist-model's."""
    c = spec["config"]
    return parse_layers({
        "seed": "conv{conv_channels}x3,relu,pool2,flatten,dense{hidden},relu,dense10",
        "fast": "conv{conv1_channels}x3,relu,pool2,conv{conv2_channels}x3,relu,pool2,flatten,dense{hidden},relu,dense10",
        "convnet": "conv{block1_channels}x3,bn,relu,conv{block1_channels}x3,bn,relu,pool2,conv{block2_channels}x3,bn,relu,"
        "conv{block2_channels}x3,bn,relu,pool2,flatten,dense{hidden},bn,relu,dense10",
    }[spec["name"]].format(**c))


def default_normalization(layers):
    """`mnist train`'s default for a layer list: MNIST's mean/std with batch norm, x/255 without."""
    return {"kind": "mean_std", "mean": 0.1307, "std": 0.3081} if "bn" in layers else {"kind": "unit"}


def normalizer(normalization):
    """The file's input transform for 0-255 pixels, as `mnist train` applied it."""
    if normalization["kind"] == "unit":
        return lambda pixels: pixels.float() / 255
    mean, std = normalization["mean"], normalization["std"]
    return lambda pixels: (pixels.float() / 255 - mean) / std


def load(path, layers=None):
    """(module in eval mode, normalize) for a file written by `mnist train`. `layers` (a list or
    its text) is needed only for files without mnist metadata; their input is then normalized as
    `mnist train` does by default (mean/std for networks with batch norm, x/255 otherwise)."""
    from safetensors import safe_open  # here, so the module above needs only torch
    from safetensors.torch import load_file

    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
    if "mnist.model_config" in meta:
        spec = json.loads(meta["mnist.model_config"])
        model = Network(spec["layers"] if "layers" in spec else legacy_layers(spec))
        normalize = normalizer(json.loads(meta["mnist.normalization"]))
    elif layers is not None:
        layers = parse_layers(layers) if isinstance(layers, str) else layers
        model = Network(layers)
        normalize = normalizer(default_normalization(layers))
    else:
        raise SystemExit(f"{path}: no mnist metadata; say which layers it holds")
    state = {k: v for k, v in load_file(path).items() if not k.startswith("optim.")}
    model.load_state_dict(state, strict=True)
    return model.eval(), normalize


def main():
    from pytorch_train import read_idx  # the same IDX reader as the timing benchmark

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
