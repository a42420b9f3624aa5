"""Data as users have it, written by the tests: PNG folders of the digits sample, WAV folders,
a word-level tokenizer.json, and a small audio model (a 1-D convolution over 16000 samples)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper

from tests.helpers.models import _init, _save

SAMPLES = Path(__file__).resolve().parents[2] / "sample_models"
RATE = 16000


def digit_pixels(index: int) -> np.ndarray:
    """Sample ``index`` of mobilenet_digits.npz as the 8-bit RGB image it was made from
    ([32, 32, 3]; the model takes (p/255 - 0.5) / 0.5, NCHW)."""
    with np.load(SAMPLES / "mobilenet_digits.npz") as z:
        x = z["input"][index].reshape(3, 32, 32)
    return np.round((x * 0.5 + 0.5) * 255).astype(np.uint8).transpose(1, 2, 0)


def digit_folder(root: Path, classes=(0, 1), per_class: int = 4, start: int = 0) -> list[int]:
    """PNG files of the digits sample in one sub-folder per class (named by the digit);
    returns the sample indices written, in the folder order edgepack reads them."""
    from PIL import Image

    with np.load(SAMPLES / "mobilenet_digits.npz") as z:
        labels = z["labels"]
    written = []
    for c in classes:
        folder = root / str(c)
        folder.mkdir(parents=True, exist_ok=True)
        for i in np.flatnonzero(labels == c)[start:start + per_class]:
            Image.fromarray(digit_pixels(int(i))).save(folder / f"{int(i):04d}.png")
            written.append(int(i))
    return written


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE, channels: int = 1) -> Path:
    """16-bit PCM WAV of float samples in [-1, 1) (``[n]``, or ``[n, channels]``)."""
    pcm = np.clip(np.round(np.asarray(samples) * 32768), -32768, 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(pcm.tobytes())
    return path


def wav_folder(root: Path, per_class: int = 3, rate: int = RATE, seed: int = 0) -> Path:
    """Class folders ``noise`` and ``tone`` of one-second clips (one of each shorter: padded)."""
    rng = np.random.default_rng(seed)
    t = np.arange(rate) / rate
    for i in range(per_class):
        n = rate if i else rate * 3 // 4
        write_wav(root / "noise" / f"n{i}.wav", rng.uniform(-0.5, 0.5, n), rate)
        pitch = 300 + 100 * i + 37 * seed
        write_wav(root / "tone" / f"t{i}.wav", 0.5 * np.sin(2 * np.pi * pitch * t[:n]), rate)
    return root


def audio_model(path: Path, length: int = RATE, seed: int = 0) -> Path:
    """``waveform`` float [1, 1, length] -> Conv1d(1->4, k=400, stride 160) -> ReLU -> mean
    over time -> Linear(4->2): ``logits`` [1, 2] (biased away from zero, so that static int8
    stays within the default budget)."""
    rng = np.random.default_rng(seed)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["waveform", "conv_w", "conv_b"], ["c"], strides=[160]),
         helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("ReduceMean", ["r", "time"], ["pooled"], keepdims=0),
         helper.make_node("MatMul", ["pooled", "fc_w"], ["m"]),
         helper.make_node("Add", ["m", "fc_b"], ["logits"])],
        "audio_conv",
        [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, [1, 1, length])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2])],
        initializer=[_init("conv_w", (rng.standard_normal((4, 1, 400)) * 0.1).astype(np.float32)),
                     _init("conv_b", np.full(4, 0.5, np.float32)),
                     _init("time", np.array([2], np.int64)),
                     _init("fc_w", rng.standard_normal((4, 2)).astype(np.float32)),
                     _init("fc_b", np.array([0.5, -0.5], np.float32))])
    return _save(graph, path, opset=18)


WORDS = ("the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "away")


def word_tokenizer(path: Path) -> Path:
    """A word-level tokenizer.json ([PAD] 0, [UNK] 1, then WORDS), made offline."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(path))
    return path
