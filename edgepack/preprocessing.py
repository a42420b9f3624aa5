"""Preprocessing declared, not coded: how images, WAV files and text lines become a model's
input.

The values the user gave (``--preprocess KEY=VALUE``, the config's ``[preprocessing]``) and
what the model's input tells (its shape and dtype) are resolved here into one record: the
report's ``data.preprocessing`` and each bundle's manifest ``preprocessing``, which
``edgepack.device.core`` applies on the build host and on the device (``run.py infer
photo.png``) alike. What is inferred is listed under ``inferred``; what cannot be inferred
(mean and std) stays at identity and is listed under ``defaults``; :func:`note` says both in
one line. DataError (exit 2) for an input these files cannot feed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from edgepack.artifact import TensorSpec
from edgepack.errors import DataError

# the --preprocess keys each kind of data uses
APPLIES = {"image": ("resize", "crop", "scale", "mean", "std", "channels", "layout"),
           "audio": ("sample_rate", "frame_length"),
           "text": ("max_tokens",)}
WORDS = {"image": "a folder of images", "audio": "a folder of WAV files", "text": "a text file",
         "arrays": ".npz/.npy arrays"}
FLAG = "--preprocess"


def resolve(kind: str, inputs: Sequence[TensorSpec], given: dict, rates: dict | None = None,
            tokenizer: dict | None = None) -> dict:
    """The preprocessing record of ``kind`` ("image", "audio", "text") for a model with
    these (free, static) inputs. ``rates`` maps each WAV file rate found to a file;
    ``tokenizer`` describes the tokenizer file (name, sha256, pad_id)."""
    if kind == "image":
        record = _image(_one_input(inputs, kind), given)
    elif kind == "audio":
        record = _audio(_one_input(inputs, kind), given, rates or {})
    else:
        record = _text(inputs, given, tokenizer or {})
    return {**record, "given": [k for k in APPLIES[kind] if k in given]}


def _one_input(inputs: Sequence[TensorSpec], kind: str) -> TensorSpec:
    if len(inputs) != 1:
        raise DataError(
            f"{WORDS[kind]} feeds a model with one input; this one takes {len(inputs)} "
            f"({', '.join(s.name for s in inputs)}): pass an .npz keyed by input name, or "
            "freeze the others with --fix-input")
    return inputs[0]


# --------------------------------------------------------------------------- images
def _image(spec: TensorSpec, given: dict) -> dict:
    dtype = np.dtype(spec.dtype)
    if dtype.kind not in "fu":
        raise DataError(f"input '{spec.name}' is {spec.dtype}{spec.shape_str()}: images feed a "
                        "float or unsigned integer input; pass an .npz")
    inferred, defaults = [], []
    layout = given.get("layout") or _layout(spec)
    if "layout" not in given:
        inferred.append("layout")
    channels_n, height, width = _image_axes(spec, layout)
    channels = given.get("channels") or ("RGB" if channels_n == 3 else "GRAY")
    if "channels" not in given:
        inferred.append("channels")
    if (channels == "GRAY") != (channels_n == 1):
        raise DataError(f"{FLAG} channels={channels} does not fit input '{spec.name}' "
                        f"{spec.shape_str()}, which has {channels_n} channel(s) in {layout}")
    crop = given.get("crop", "center")
    resize = given.get("resize")
    if resize is not None and crop == "none":
        raise DataError(f"{FLAG} resize applies with crop=center (crop=none stretches each "
                        "image to the input's size); leave one of them out")
    if resize is not None and resize < max(height, width):
        raise DataError(f"{FLAG} resize={resize} is smaller than input '{spec.name}' "
                        f"({height}x{width}), so the centre crop would not fit; pass at least "
                        f"{max(height, width)}")
    if resize is None:
        resize = max(height, width)
        inferred.append("resize")
    scale = given.get("scale")
    if scale is None:
        scale = 1 / 255 if dtype.kind == "f" else 1.0
        inferred.append("scale")
    mean = _per_channel(given, "mean", 0.0, channels_n, spec, defaults)
    std = _per_channel(given, "std", 1.0, channels_n, spec, defaults)
    return {"kind": "image", "input": spec.name, "size": [height, width], "resize": resize,
            "crop": crop, "scale": scale, "mean": mean, "std": std, "channels": channels,
            "layout": layout, "inferred": inferred, "defaults": defaults}


def _layout(spec: TensorSpec) -> str:
    """NCHW or NHWC: the importer's layout, else where a 1- or 3-wide axis is (NCHW first)."""
    shape = spec.shape
    if spec.layout in ("NCHW", "NHWC") and len(shape) == 4:
        return spec.layout
    if len(shape) in (3, 4) and shape[-3] in (1, 3):
        return "NCHW"
    if len(shape) in (3, 4) and shape[-1] in (1, 3):
        return "NHWC"
    raise DataError(f"input '{spec.name}' {spec.shape_str()} is not an image input edgepack "
                    "can tell: it takes [1, C, H, W], [1, H, W, C], [C, H, W] or [H, W, C] with "
                    f"1 or 3 channels (pass {FLAG} layout=NCHW or NHWC if it is one)")


def _image_axes(spec: TensorSpec, layout: str) -> tuple[int, int, int]:
    """(channels, height, width) of an image input in ``layout``."""
    shape = tuple(spec.shape)
    if len(shape) not in (3, 4) or (len(shape) == 4 and shape[0] != 1):
        raise DataError(f"input '{spec.name}' {spec.shape_str()}: images feed one image per "
                        "sample, [1, C, H, W] or [C, H, W] (or channels last); pass an .npz")
    c, h, w = shape[-3:] if layout == "NCHW" else (shape[-1], *shape[-3:-1])
    if c not in (1, 3):
        raise DataError(f"input '{spec.name}' {spec.shape_str()} has {c} channels in {layout}; "
                        "images feed 1 (grey) or 3 (colour): pass an .npz, or the other "
                        f"{FLAG} layout")
    return c, h, w


def _per_channel(given: dict, key: str, identity: float, channels: int, spec: TensorSpec,
                 defaults: list) -> list[float]:
    values = given.get(key)
    if values is None:
        defaults.append(key)
        return [identity] * channels
    values = list(values)
    if len(values) not in (1, channels):
        raise DataError(f"{FLAG} {key} has {len(values)} values; input '{spec.name}' has "
                        f"{channels} channel(s): give one value or {channels}")
    return values * channels if len(values) == 1 else values


# --------------------------------------------------------------------------- audio
def _audio(spec: TensorSpec, given: dict, rates: dict) -> dict:
    long = [d for d in spec.shape if d != 1]
    if np.dtype(spec.dtype).kind != "f" or len(long) > 1:
        raise DataError(f"input '{spec.name}' is {spec.dtype}{spec.shape_str()}: WAV files feed "
                        "a float waveform input (one axis of samples, e.g. [1, 16000]); for "
                        "features such as spectrograms pass an .npz")
    length = math.prod(spec.shape)
    inferred = []
    rate = given.get("sample_rate")
    if rate is None:
        if len(rates) > 1:
            found = ", ".join(f"{r} Hz ({p.name})" for r, p in sorted(rates.items()))
            raise DataError(f"the WAV files have different sample rates: {found}; nothing is "
                            "resampled: convert them to the model's rate, and pass "
                            f"{FLAG} sample_rate=HZ")
        rate = next(iter(rates), 16000)
        inferred.append("sample_rate")
    frame = given.get("frame_length")
    if frame is None:
        frame = length
        inferred.append("frame_length")
    elif frame > length:
        raise DataError(f"{FLAG} frame_length={frame} is longer than input '{spec.name}' "
                        f"({length} samples); pass at most {length}")
    return {"kind": "audio", "input": spec.name, "sample_rate": rate, "frame_length": frame,
            "length": length, "mono": "channels averaged", "pcm": "scaled to [-1, 1)",
            "inferred": inferred, "defaults": []}


# --------------------------------------------------------------------------- text
def _text(inputs: Sequence[TensorSpec], given: dict, tokenizer: dict) -> dict:
    bad = [s for s in inputs if np.dtype(s.dtype).kind not in "iu"]
    if bad:
        raise DataError(f"input '{bad[0].name}' is {bad[0].dtype}: a text file feeds integer "
                        "inputs (token ids, attention mask, token type ids); pass an .npz")
    mask = [s for s in inputs if "mask" in s.name.lower()]
    types = [s for s in inputs if "type" in s.name.lower() and s not in mask]
    ids = [s for s in inputs if s not in mask and s not in types]
    if len(ids) != 1 or len(mask) > 1 or len(types) > 1:
        raise DataError("a text file feeds token ids (plus an optional attention mask and token "
                        f"type ids); this model's inputs are {', '.join(s.name for s in inputs)}"
                        ": pass an .npz keyed by input name")
    length = math.prod(ids[0].shape)
    for spec in mask + types:
        if math.prod(spec.shape) != length:
            raise DataError(f"input '{spec.name}' {spec.shape_str()} is not as long as the token "
                            f"ids '{ids[0].name}' {ids[0].shape_str()}; pass an .npz")
    inferred = []
    max_tokens = given.get("max_tokens")
    if max_tokens is None:
        max_tokens = length
        inferred.append("max_tokens")
    elif max_tokens > length:
        raise DataError(f"{FLAG} max_tokens={max_tokens} is more than input '{ids[0].name}' "
                        f"holds ({length}); pass at most {length}")
    names = {"ids": ids[0].name, "mask": mask[0].name if mask else None,
             "type_ids": types[0].name if types else None}
    return {"kind": "text", "inputs": names, "length": length, "max_tokens": max_tokens,
            "tokenizer": tokenizer, "inferred": inferred, "defaults": []}


# --------------------------------------------------------------------------- in words
def note(record: dict, classes: dict | None = None) -> str:
    """One line saying what was assumed, given and left at identity (report and terminal)."""
    kind = record["kind"]
    inferred, defaults = record.get("inferred", []), record.get("defaults", [])
    given = record.get("given", [])
    words = {k: _value_words(record, k) for k in APPLIES[kind]}
    if kind == "text":
        tok = record["tokenizer"]
        text = (f"a text file feeds input(s) {', '.join(n for n in record['inputs'].values() if n)}"
                f" (tokens by {tok.get('file')}, padded with id {tok.get('pad_id')})")
    else:
        text = f"{WORDS[kind]} feeds input '{record['input']}'"
    for source, keys in (("its shape", [k for k in inferred if k != "sample_rate"]),
                         ("the files", [k for k in inferred if k == "sample_rate"])):
        if keys:
            text += f"; assumed from {source}: " + ", ".join(words[k] for k in keys)
    if given:
        text += "; given: " + ", ".join(words[k] for k in given)
    if defaults:
        text += (f"; {' and '.join(defaults)} cannot be told from the model: left at "
                 f"{' and '.join(words[k] for k in defaults)} (pass "
                 f"{' '.join(f'{FLAG} {k}=...' for k in defaults)} if it was trained "
                 "normalised)")
    if kind == "audio":
        text += "; each file's channels averaged, its PCM scaled to [-1, 1)"
    if classes:
        text += f"; class indices: {classes['from']}"
    return text + " (report.json: data.preprocessing)"


def _value_words(record: dict, key: str) -> str:
    value = record[key]
    if key == "resize":
        h, w = record["size"]
        return f"resize the shorter side to {value} px, centre-crop {h}x{w}" \
            if record["crop"] == "center" else f"stretch to {h}x{w}"
    if key == "crop":
        return f"crop {value}"
    if key == "scale":
        return "scale 1/255" if math.isclose(value, 1 / 255) else f"scale {value:g}"
    if key in ("mean", "std"):
        return f"{key} {value[0]:g}" if len(set(value)) == 1 else \
            f"{key} [{', '.join(f'{v:g}' for v in value)}]"
    if key == "sample_rate":
        return f"sample rate {value} Hz"
    if key in ("frame_length", "max_tokens"):
        return f"{key} {value}"
    return f"{key} {value}"  # channels, layout
