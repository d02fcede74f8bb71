"""Checks this project's exported files with other tools, against logits our own forward pass
computed (a "reference" safetensors file holding `images`, float32 [n, 1, 28, 28] scaled 0-1,
and `logits`, float32 [n, 10]). Run by tests/export.rs in the environment that
scripts/python-venv.sh makes; each check prints one line and exits 1 when the files disagree.

  check_export.py ort MODEL.onnx REFERENCE.safetensors
      ONNX Runtime runs the model; logits must match to 1e-4 (NaN fails) and every digit must agree.
  check_export.py numpy WEIGHTS.safetensors REFERENCE.safetensors
      The tutorial model's forward pass in NumPy alone, from the safetensors file:
      proves tensor names, layouts and the flatten order without PyTorch.
  check_export.py state-dict WEIGHTS.safetensors OUT.safetensors
      Saves the model tensors as a plain state_dict with no metadata, the way
      safetensors.torch.save_file(model.state_dict(), ...) does (optimizer state dropped).
"""
import sys

import numpy as np
from safetensors.numpy import load_file, save_file

TOLERANCE = 1e-4


def compare(name, logits, reference):
    expected = reference["logits"]
    if logits.shape != expected.shape:
        print(f"{name}: logits of shape {logits.shape}, expected {expected.shape}")
        sys.exit(1)
    # np.max propagates NaN, and `not diff <= TOLERANCE` holds for it (`diff > TOLERANCE` would not).
    diff = float(np.max(np.abs(logits - expected)))
    same = int(np.sum(logits.argmax(1) == expected.argmax(1)))
    n = len(expected)
    print(f"{name}: max |logit difference| {diff:.2e} over {n} images, {same}/{n} same digits")
    if not diff <= TOLERANCE or same != n:
        sys.exit(1)


def check_ort(model_path, reference_path):
    import onnxruntime as ort

    reference = load_file(reference_path)
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, out.name) == ("pixels", "logits"), (inp.name, out.name)
    assert inp.shape[1:] == [1, 28, 28] and isinstance(inp.shape[0], str), inp.shape
    meta = session.get_modelmeta().custom_metadata_map
    for key in ["mnist.architecture", "mnist.normalization", "mnist.version", "mnist.input"]:
        assert key in meta, f"metadata {key} missing: {sorted(meta)}"
    # Batches of different sizes through the same session: the batch dimension is dynamic.
    images = reference["images"]
    logits = np.concatenate([session.run(["logits"], {"pixels": images[i : i + 100]})[0] for i in range(0, len(images), 100)])
    compare(f"onnxruntime {ort.__version__} ({meta['mnist.architecture']})", logits, reference)


def conv2d_valid(x, w, b):
    """x [n, c, h, w], w [o, c, k, k] (PyTorch layout), no padding, stride 1."""
    k = w.shape[2]
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))  # n c h' w' k k
    return np.einsum("nchwij,ocij->nohw", windows, w) + b[None, :, None, None]


def check_numpy(weights_path, reference_path):
    t = {k: v.astype(np.float64) for k, v in load_file(weights_path).items()}
    reference = load_file(reference_path)
    x = reference["images"].astype(np.float64)  # the tutorial's normalization is x/255: done
    x = np.maximum(conv2d_valid(x, t["conv1.weight"], t["conv1.bias"]), 0)  # n 32 26 26
    n, c, h, w = x.shape
    x = x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))  # n 32 13 13
    x = x.reshape(n, -1)  # C, H, W order, as PyTorch's flatten
    x = np.maximum(x @ t["fc1.weight"].T + t["fc1.bias"], 0)
    logits = x @ t["fc2.weight"].T + t["fc2.bias"]
    compare(f"numpy {np.__version__} forward pass (tutorial)", logits, reference)


def write_state_dict(weights_path, out_path):
    tensors = load_file(weights_path)
    state = {k: v for k, v in tensors.items() if not k.startswith("optim.")}
    save_file(state, out_path)
    print(f"wrote {len(state)} tensors without metadata to {out_path}")


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"ort": check_ort, "numpy": check_numpy, "state-dict": write_state_dict}[command](*args)
