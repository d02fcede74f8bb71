"""Writes tests/corpus/: malformed inputs for the three readers (IDX files, checkpoints, images)
and cases.tsv, which says for each how tests/bad_inputs.rs feeds it to the binary and which
words its one-line error must contain. Standard library only; deterministic.

    python3 scripts/make-bad-corpus.py
"""
import gzip
import json
import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(__file__), "..", "tests", "corpus")
cases = []  # (file, role, words)


def write(name, data, role, words):
    path = os.path.join(ROOT, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    cases.append((name, role, words))


# --- IDX: role "images" replaces t10k-images, "labels" replaces t10k-labels in a small valid set
# of 10 test images (tests/bad_inputs.rs writes the rest).
def images(n, rows=28, cols=28, magic=0x803, data=None):
    head = struct.pack(">IIII", magic, n, rows, cols)
    return head + (data if data is not None else bytes((i * 7) % 256 for i in range(n * rows * cols)))


def labels(values, count=None, magic=0x801):
    return struct.pack(">II", magic, len(values) if count is None else count) + bytes(values)


good_images, good_labels = images(10), labels(list(range(10)))
write("idx/empty", b"", "images", "shorter than the 16-byte header")
for cut in (2, 4, 8, 12, 15):
    write(f"idx/images-cut-at-{cut}", good_images[:cut], "images", "shorter than the 16-byte header")
write("idx/labels-cut-at-6", good_labels[:6], "labels", "shorter than the 8-byte header")
write("idx/images-cut-in-data", good_images[:16 + 784 * 3 + 5], "images", "the file is truncated")
write("idx/labels-cut-in-data", good_labels[:12], "labels", "the file is truncated")
write("idx/wrong-magic", images(10, magic=0x0000_0B03), "images", "magic number")
write("idx/labels-given-as-images", good_labels, "images", "declares 1 dimension(s), expected 3")
write("idx/images-32x32", images(10, 32, 32), "images", "images are 32x32 pixels")
write("idx/count-overflow", struct.pack(">IIII", 0x803, 0xFFFF_FFFF, 28, 28) + bytes(784), "images", "the file is truncated")
write("idx/dimension-overflow", struct.pack(">IIII", 0x803, 10, 0xFFFF_FFFF, 0xFFFF_FFFF), "images", "expected 28x28")
write("idx/trailing-bytes", good_images + b"extra", "images", "goes on past")
write("idx/label-ten", labels([0, 1, 2, 10, 4, 5, 6, 7, 8, 9]), "labels", "label #3 is 10")
write("idx/eleven-labels", labels(list(range(10)) + [3]), "labels", "11 labels but 10 images")
write("idx/gzip-cut", gzip.compress(good_images, mtime=0)[:200], "images", "does not decompress")
write("idx/gzip-bomb", gzip.compress(struct.pack(">IIII", 0x803, 10, 28, 28) + bytes(50_000_000), mtime=0), "images", "goes on past")
write("idx/text.gz", b"\x1f\x8bnot really gzip", "images", "does not decompress")


# --- Checkpoints: role "weights" is passed to `mnist predict --weights FILE picture`.
def safetensors(tensors, meta=None, header_override=None):
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if meta is not None:
        header["__metadata__"] = meta
    h = header_override if header_override is not None else json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


f32 = lambda n, v=0.01: struct.pack(f"<{n}f", *([v] * n))
seed_meta = {"format": "pt", "mnist.format_version": "1", "mnist.version": "0.1.0", "mnist.architecture": "seed",
             "mnist.model_config": '{"name":"seed","config":{"conv_channels":32,"hidden":128}}',
             "mnist.normalization": '{"kind":"unit"}', "mnist.epoch": "1"}
write("checkpoint/empty.safetensors", b"", "weights", "not a safetensors file")
write("checkpoint/text.safetensors", b"these are not weights\n", "weights", "not a safetensors file")
write("checkpoint/header-longer-than-file.safetensors", struct.pack("<Q", 1 << 40) + b"{}", "weights", "not a safetensors file")
write("checkpoint/header-not-json.safetensors", safetensors({}, header_override=b"{not json"), "weights", "not a safetensors file")
lying = json.dumps({"conv1.bias": {"dtype": "F32", "shape": [32], "data_offsets": [0, 4096]}}).encode()
write("checkpoint/offsets-past-the-end.safetensors", safetensors({}, header_override=lying) + f32(32), "weights", "not a safetensors file")
overlap = json.dumps({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}).encode()
write("checkpoint/overlapping-offsets.safetensors", safetensors({}, header_override=overlap) + f32(3), "weights", "not a safetensors file")
write("checkpoint/unknown-architecture.safetensors", safetensors({"conv1.bias": ("F32", [32], f32(32))}, dict(seed_meta, **{"mnist.architecture": "resnet", "mnist.model_config": '{"name":"resnet","config":{}}'})), "weights", "resnet")
write("checkpoint/bad-normalization.safetensors", safetensors({"conv1.bias": ("F32", [32], f32(32))}, dict(seed_meta, **{"mnist.normalization": "{oops"})), "weights", "mnist.normalization")
write("checkpoint/missing-tensors.safetensors", safetensors({"conv1.bias": ("F32", [32], f32(32))}, seed_meta), "weights", "is missing")
write("checkpoint/wrong-shape.safetensors", safetensors({"conv1.weight": ("F32", [32, 1, 5, 5], f32(800)), "conv1.bias": ("F32", [32], f32(32))}, seed_meta), "weights", "has shape [32, 1, 5, 5]")
write("checkpoint/integer-weights.safetensors", safetensors({"conv1.weight": ("I32", [32, 1, 3, 3], bytes(4 * 288)), "conv1.bias": ("F32", [32], f32(32))}, seed_meta), "weights", "dtype")

# --- Images: role "picture" is passed to `mnist predict FILE`.
def png(w, h, raw=None, color=0):
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    raw = raw if raw is not None else b"".join(b"\0" + b"\xff" * w for _ in range(h))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


ring = b"".join(b"\0" + bytes(20 if 10 <= ((x - 16) ** 2 + (y - 16) ** 2) ** 0.5 <= 14 else 240 for x in range(32)) for y in range(32))
good_png = png(32, 32, ring)
write("image/empty.png", b"", "picture", "the file is empty")
write("image/text.png", b"a text file with a .png name\n", "picture", "not an image")
write("image/zero-by-zero.png", png(0, 0, b""), "picture", "Invalid image dimensions")
write("image/claims-100000x100000.png", png(100_000, 100_000, b"\0" * 16), "picture", "100000x100000")
write("image/cut-in-data.png", good_png[: len(good_png) // 2], "picture", "damaged or truncated")
write("image/cut-in-header.png", good_png[:20], "picture", "damaged or truncated")
write("image/blank.png", png(64, 64), "picture", "no ink found")
write("image/claims-huge.bmp", b"BM" + struct.pack("<IHHI", 70, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, 90_000, 90_000, 1, 24, 0, 0, 0, 0, 0, 0) + b"\0" * 16, "picture", "Image too large")
write("image/jpeg-header-only.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00", "picture", "damaged or truncated")
write("image/gif-header-only.gif", b"GIF89a\x10\x00\x10\x00\x00\x00\x00", "picture", "damaged or truncated")
write("image/tiff-garbage.tiff", b"II*\x00\x08\x00\x00\x00" + b"\xff" * 40, "picture", "damaged or truncated")
write("image/webp-riff-only.webp", b"RIFF\x04\x00\x00\x00WEBP", "picture", "damaged or truncated")

with open(os.path.join(ROOT, "cases.tsv"), "w") as f:
    f.write("# file\trole\twords its error line must contain (made by scripts/make-bad-corpus.py)\n")
    for name, role, words in cases:
        f.write(f"{name}\t{role}\t{words}\n")
print(f"{len(cases)} cases in {os.path.normpath(ROOT)}")
