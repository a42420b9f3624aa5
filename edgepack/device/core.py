#!/usr/bin/env python3
"""edgepack device runner: check, run and time this bundle on the device.

    python run.py selftest            verify file checksums and golden outputs
    python run.py infer IN.npz|IN.npy|IMAGE|WAV [-o OUT.npz]
    python run.py bench [--runs N | --min-time S] [--warmup N] [--threads N]

Needs only the Python standard library, numpy and this bundle's runtime (see
requirements.txt); edgepack itself is not needed. The runtime is driven by ``backend.py``
beside this file. edgepack imports this same file on the build host to evaluate, compare,
gate and time bundles, so the host and the device cannot disagree.

Data model: one *sample* is one model invocation's full feed. Arrays of many samples carry a
leading samples axis, ``[N, *input_shape]``; outputs are stacked the same way, so nothing
assumes where (or whether) a model has a batch axis.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import resource
import sys
import time
from pathlib import Path, PurePosixPath

import numpy as np

MANIFEST = "manifest.json"
BACKEND_FILE = "backend.py"
# an output within this absolute error of the reference matches it, whatever its cosine
# (a near-zero output's direction is noise)
ATOL = 1e-6
# How an output is compared (besides its cosine): "values" by its max relative error;
# "map" (a one-channel probability or score map) by the IoU of the maps thresholded at
# MAP_THRESHOLD of the reference's max and the relative error of the values above
# REL_ERROR_FLOOR of it; "sequence" (rows of class probabilities, e.g. a CTC output) by the
# agreement of each row's argmax and that same relative error. A few pixels or steps near
# the threshold flip under int8 and make the max relative error ~1 however good the rest is.
OUTPUT_KINDS = ("values", "map", "sequence")
MAP_THRESHOLD = 0.3
REL_ERROR_FLOOR = 0.3


class BundleProblem(Exception):
    """The bundle or the data given to it is unusable (exit code 2 on the device)."""


# --------------------------------------------------------------------------- runtimes
def load_backend(path: Path) -> type:
    """The ``Backend`` class defined by a backend file (``backend.py`` in a bundle).

    A backend is ``Backend(model_path, threads, options)`` with ``load() -> dict`` (what the
    runtime configured), ``run(feeds) -> {output name: array}`` and ``close()``.
    """
    path = Path(path)
    name = "edgepack_backend_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name].Backend
    sys.dont_write_bytecode = True  # no __pycache__ inside a checksummed bundle
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.Backend


class Model:
    """One model loaded in its runtime; a context manager.

    ``infer`` checks every feed against the declared inputs and every result against the
    declared outputs; the backend only runs the runtime.
    """

    def __init__(self, backend_cls: type, model_path: Path, inputs: list, outputs: list,
                 threads: int, options: dict) -> None:
        self.inputs, self.outputs = inputs, outputs
        self.output_names = [o["name"] for o in outputs]
        self.backend = backend_cls(Path(model_path), threads,
                                   {**options, "io": {"inputs": inputs, "outputs": outputs}})
        self.info: dict = {}
        self.loaded = False

    def load(self) -> Model:
        self.info = self.backend.load() or {}
        self.loaded = True
        return self

    def infer(self, feeds: dict) -> dict:
        if not self.loaded:
            raise RuntimeError("Model.infer called before load()")
        for spec in self.inputs:
            arr = feeds.get(spec["name"])
            if arr is None:
                raise BundleProblem(f"no value fed for input '{spec['name']}'")
            if arr.dtype != np.dtype(spec["dtype"]) or list(arr.shape) != list(spec["shape"]):
                raise BundleProblem(
                    f"input '{spec['name']}' got {arr.dtype}{list(arr.shape)}, the model "
                    f"expects {spec['dtype']}{list(spec['shape'])}")
        result = self.backend.run(feeds)
        missing = [n for n in self.output_names if n not in result]
        if missing:
            raise RuntimeError(f"the runtime returned no output {', '.join(missing)}")
        return {name: np.asarray(result[name]) for name in self.output_names}

    def close(self) -> None:
        if self.loaded:
            self.backend.close()
            self.loaded = False

    def __enter__(self) -> Model:
        return self.load()

    def __exit__(self, *exc) -> None:
        self.close()


def open_model(bundle: Path, manifest: dict, threads: int | None = None) -> Model:
    """The bundle's model with its own backend (not yet loaded)."""
    return Model(load_backend(bundle / BACKEND_FILE), bundle / manifest["model_file"],
                 manifest["inputs"], manifest["outputs"], threads or manifest["threads"],
                 manifest["runtime"].get("options", {}))


# --------------------------------------------------------------------------- samples
def sample_count(arrays: dict) -> int:
    counts = {len(v) for v in arrays.values()}
    if len(counts) != 1:
        raise BundleProblem(f"inputs hold different numbers of samples: {sorted(counts)}")
    return counts.pop()


def run_samples(model: Model, arrays: dict) -> dict:
    """Run every sample (``arrays[name][i]`` is sample i's input ``name``; arrays for names
    the model does not take are ignored); outputs per sample, listed."""
    names = [s["name"] for s in model.inputs]
    missing = [n for n in names if n not in arrays]
    if missing:
        raise BundleProblem(f"no data for input(s) {', '.join(missing)}")
    arrays = {n: arrays[n] for n in names}
    collected = {name: [] for name in model.output_names}
    for i in range(sample_count(arrays)):
        result = model.infer({k: np.asarray(v[i]) for k, v in arrays.items()})
        for name in model.output_names:
            collected[name].append(result[name])
    return collected


def pack(outputs: dict) -> dict:
    """Per-sample outputs -> arrays to save: stacked ``[N, ...]`` where every sample has the
    same shape, else one array per sample under ``name#i``."""
    packed = {}
    for name, values in outputs.items():
        if len({v.shape for v in values}) <= 1:
            packed[name] = np.stack(values) if values else np.zeros((0,))
        else:
            packed.update({f"{name}#{i}": v for i, v in enumerate(values)})
    return packed


def unpack(arrays: dict, names: list) -> dict:
    """The inverse of :func:`pack`."""
    out = {}
    for name in names:
        if name in arrays:
            out[name] = list(arrays[name])
        else:
            keys = sorted((k for k in arrays if k.rpartition("#")[0] == name),
                          key=lambda k: int(k.rpartition("#")[2]))
            out[name] = [arrays[k] for k in keys]
    return out


def load_npz(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


# --------------------------------------------------------------------------- preprocessing
# A bundle built from images or WAV files declares how a file becomes the model's input in
# its manifest's "preprocessing"; these functions apply it, on the build host (calibration,
# evaluation) and on the device (`run.py infer photo.png`) alike. numpy does the arithmetic;
# images are decoded by Pillow (imported only here), WAV files by Python's wave module.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
AUDIO_SUFFIXES = (".wav",)
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, as Pillow's convert("L")


def decode_image(path: Path) -> np.ndarray:
    """The image file's pixels as uint8 ``[H, W, 3]`` RGB (alpha dropped, grey replicated).
    BundleProblem when Pillow is missing or the file is not a readable image."""
    try:
        from PIL import Image
    except ImportError:
        raise BundleProblem(f"{path.name}: reading an image needs Pillow (pip install Pillow), "
                            "or pass the input as .npz/.npy") from None
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as e:
        raise BundleProblem(f"{path}: not a readable image ({first_line(e)})") from None


def first_line(e: Exception) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:200] if lines else type(e).__name__


def resize_bilinear(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """``[h, w, C]`` floats resized to ``[height, width, C]``: bilinear with half-pixel
    centres (OpenCV's INTER_LINEAR); a shrink by 2x or more first averages k x k blocks, so
    fine detail does not alias."""
    k = min(img.shape[0] // height, img.shape[1] // width)
    if k >= 2:
        h, w = img.shape[0] // k * k, img.shape[1] // k * k
        img = img[:h, :w].reshape(h // k, k, w // k, k, -1).mean(axis=(1, 3))
    if img.shape[:2] == (height, width):
        return img

    def taps(size_in: int, size_out: int) -> tuple:
        x = np.clip((np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5, 0, size_in - 1)
        lo = np.floor(x).astype(np.int64)
        return lo, np.minimum(lo + 1, size_in - 1), x - lo

    y0, y1, fy = taps(img.shape[0], height)
    x0, x1, fx = taps(img.shape[1], width)
    fx, fy = fx[None, :, None], fy[:, None, None]
    top = img[y0][:, x0] * (1 - fx) + img[y0][:, x1] * fx
    bottom = img[y1][:, x0] * (1 - fx) + img[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


def fit_image(img: np.ndarray, height: int, width: int, resize: int, crop: str) -> np.ndarray:
    """Resize so the shorter side is ``resize`` pixels (aspect kept), then take the centre
    ``height x width``; with ``crop`` "none", stretch to ``height x width`` instead."""
    if crop == "none":
        return resize_bilinear(img, height, width)
    scale = resize / min(img.shape[0], img.shape[1])
    h = max(height, round(img.shape[0] * scale))
    w = max(width, round(img.shape[1] * scale))
    img = resize_bilinear(img, h, w)
    top, left = (h - height) // 2, (w - width) // 2
    return img[top:top + height, left:left + width]


def as_dtype(values: np.ndarray, dtype: str) -> np.ndarray:
    """Floats as the input's dtype: integers rounded and clipped to the dtype's range."""
    kind = np.dtype(dtype)
    if kind.kind in "iu":
        info = np.iinfo(kind)
        return np.clip(np.round(values), info.min, info.max).astype(kind)
    return values.astype(kind)


def image_sample(pixels: np.ndarray, prep: dict, shape: list, dtype: str) -> np.ndarray:
    """One decoded image (``[H, W, 3]`` RGB, 0..255) as the model's input, by the declared
    preprocessing: resize and crop, channel order, ``* scale``, ``(x - mean) / std``, layout,
    dtype."""
    height, width = prep["size"]
    img = fit_image(pixels.astype(np.float64), height, width, prep["resize"], prep["crop"])
    if prep["channels"] == "BGR":
        img = img[..., ::-1]
    elif prep["channels"] == "GRAY":
        img = (img[..., 0] * LUMA[0] + img[..., 1] * LUMA[1] + img[..., 2] * LUMA[2])[..., None]
    img = (img * prep["scale"] - np.asarray(prep["mean"], np.float64)) \
        / np.asarray(prep["std"], np.float64)
    if prep["layout"] == "NCHW":
        img = img.transpose(2, 0, 1)
    return as_dtype(img.reshape(shape), dtype)


def read_wav(path: Path) -> tuple:
    """A PCM WAV file as (sample rate in Hz, mono float64 samples in [-1, 1)): channels are
    averaged. BundleProblem for a file Python's wave module cannot read."""
    import wave

    try:
        with wave.open(str(path), "rb") as f:
            rate, channels, width = f.getframerate(), f.getnchannels(), f.getsampwidth()
            raw = f.readframes(f.getnframes())
    except (wave.Error, EOFError, OSError, ValueError) as e:
        raise BundleProblem(f"{path}: not a PCM WAV file ({first_line(e)})") from None
    raw = raw[:len(raw) // (width * channels) * width * channels]
    if width == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float64) - 128) / 128
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        x = ((b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8) / float(1 << 23)
    else:
        x = np.frombuffer(raw, f"<i{width}").astype(np.float64) / float(1 << (8 * width - 1))
    return rate, x.reshape(-1, channels).mean(axis=1)


def audio_sample(samples: np.ndarray, rate: int, prep: dict, shape: list, dtype: str,
                 where: str) -> np.ndarray:
    """Mono samples as the model's input: the first ``frame_length`` samples, zero-padded to
    the input's length. BundleProblem for a rate other than the declared one (no
    resampling is done)."""
    if rate != prep["sample_rate"]:
        raise BundleProblem(f"{where} is sampled at {rate} Hz; the model takes "
                            f"{prep['sample_rate']} Hz (nothing is resampled: convert the "
                            f"file, e.g. sox IN.wav -r {prep['sample_rate']} OUT.wav)")
    out = np.zeros(int(np.prod(shape)), np.float64)
    take = samples[:min(prep["frame_length"], out.size)]
    out[:len(take)] = take
    return as_dtype(out.reshape(shape), dtype)


def media_kind(path: Path) -> str | None:
    """"image" or "audio" by the file's suffix, else None."""
    suffix = path.suffix.lower()
    return "image" if suffix in IMAGE_SUFFIXES else "audio" if suffix in AUDIO_SUFFIXES else None


def read_media_file(path: Path, manifest: dict) -> dict:
    """An image or WAV file as one sample of the bundle's input (``[1, *shape]``), by the
    manifest's preprocessing."""
    kind = media_kind(path)
    prep = manifest.get("preprocessing") or {}
    if prep.get("kind") != kind:
        built = {"image": "images", "audio": "WAV files", "text": "text"}.get(prep.get("kind"),
                                                                              "arrays")
        raise BundleProblem(f"{path.name}: this bundle declares no {kind} preprocessing (it "
                            f"was built from {built}); pass the input as .npz/.npy")
    specs = manifest["inputs"]
    if [s["name"] for s in specs] != [prep["input"]]:
        raise BundleProblem(f"{path.name} feeds input '{prep['input']}' only; this model takes "
                            f"{', '.join(s['name'] for s in specs)}: pass an .npz")
    spec = specs[0]
    if kind == "image":
        arr = image_sample(decode_image(path), prep, spec["shape"], spec["dtype"])
    else:
        rate, samples = read_wav(path)
        arr = audio_sample(samples, rate, prep, spec["shape"], spec["dtype"], path.name)
    return {spec["name"]: arr[None]}


# --------------------------------------------------------------------------- accuracy
def compare(reference: list, actual: list, kind: str = "values") -> dict:
    """Error of ``actual`` against ``reference`` (both: one array per sample).

    Shapes first. Integer and boolean outputs compare exactly (``match``: the fraction of
    equal elements). Float outputs: max/mean abs error, relative max error (over the
    reference's max abs value) and cosine similarity, and what the output's ``kind`` is
    compared by (see OUTPUT_KINDS): ``map_iou``, ``step_agreement``, ``floor_rel_error``;
    non-finite values in ``actual`` count as infinitely wrong. Never NaN.
    """
    if len(reference) != len(actual):
        return {"shape_ok": False,
                "error": f"{len(actual)} samples, expected {len(reference)}"}
    for i, (r, a) in enumerate(zip(reference, actual, strict=True)):
        if np.shape(r) != np.shape(a):
            return {"shape_ok": False, "error": f"shape {list(np.shape(a))}, expected "
                    f"{list(np.shape(r))}" + (f" (sample {i})" if len(reference) > 1 else "")}
    if not reference:
        return {"shape_ok": True, "exact": True, "match": 1.0, "elements": 0}
    ref = np.concatenate([np.ravel(r) for r in reference])
    out = np.concatenate([np.ravel(a) for a in actual])
    if ref.dtype.kind in "iub" and out.dtype.kind in "iub":
        mismatches = int(np.count_nonzero(ref != out))
        return {"shape_ok": True, "exact": True, "elements": int(ref.size),
                "mismatches": mismatches,
                "match": 1.0 - mismatches / ref.size if ref.size else 1.0}
    ref, out = ref.astype(np.float64), out.astype(np.float64)
    nonfinite = int(np.count_nonzero(~np.isfinite(out)))
    if nonfinite:
        worst = {"map": {"map_iou": 0.0, "floor_rel_error": float("inf")},
                 "sequence": {"step_agreement": 0.0, "floor_rel_error": float("inf")}}
        return {"shape_ok": True, "max_abs": float("inf"), "mean_abs": float("inf"),
                "rel_error": float("inf"), "cosine": 0.0, "nonfinite": nonfinite,
                **_kind(kind), **worst.get(kind, {})}
    diff = np.abs(ref - out)
    max_abs = float(diff.max()) if diff.size else 0.0
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    nr, no = float(np.linalg.norm(ref)), float(np.linalg.norm(out))
    if nr == 0.0 and no == 0.0:
        cosine = 1.0
    elif nr == 0.0 or no == 0.0:
        cosine = 0.0
    else:
        cosine = float(np.clip(np.dot(ref, out) / (nr * no), -1.0, 1.0))
    m = {"shape_ok": True, "max_abs": max_abs,
         "mean_abs": float(diff.mean()) if diff.size else 0.0,
         "rel_error": max_abs / scale if scale > 0 else max_abs, "cosine": cosine}
    if kind in ("map", "sequence"):
        m["floor_rel_error"] = _floor_rel_error(ref, diff, scale)
    if kind == "map":
        on_ref, on_out = ref > MAP_THRESHOLD * scale, out > MAP_THRESHOLD * scale
        union = int(np.count_nonzero(on_ref | on_out))
        m["map_iou"] = float(np.count_nonzero(on_ref & on_out) / union) if union else 1.0
    elif kind == "sequence":
        classes = np.shape(reference[0])[-1] if np.ndim(reference[0]) else 1
        m["step_agreement"] = float(np.mean(np.argmax(ref.reshape(-1, classes), 1)
                                            == np.argmax(out.reshape(-1, classes), 1)))
    return {**m, **_kind(kind)}


def _kind(kind: str) -> dict:
    return {} if kind == "values" else {"kind": kind}


def _floor_rel_error(ref: np.ndarray, diff: np.ndarray, scale: float) -> float:
    """Mean relative error over the values at least REL_ERROR_FLOOR of the reference's max
    abs value (where a relative error means something)."""
    above = np.abs(ref) >= REL_ERROR_FLOOR * scale
    if scale == 0 or not above.any():
        return 0.0
    return float(np.mean(diff[above] / np.abs(ref[above])))


def output_checks(name: str, m: dict, tol: dict) -> list:
    """The checks one output must pass: ``(check name, value, limit, "min"|"max")``.

    ``tol`` holds ``min_cosine``, ``max_rel_error`` and ``min_match``. The one decision shared
    by the build host's gates and the device's selftest.
    """
    if not m.get("shape_ok"):
        return [(f"{name}.shape_ok", 0.0, 1.0, "min")]
    if m.get("exact"):
        return [(f"{name}.match", m["match"], tol["min_match"], "min")]
    kind = m.get("kind", "values")
    if kind == "values":
        checks = [(f"{name}.rel_error", m["rel_error"], tol["max_rel_error"], "max")]
    else:
        checks = [(f"{name}.floor_rel_error", m["floor_rel_error"], tol["max_floor_rel_error"],
                   "max")]
    if kind == "map":
        checks.append((f"{name}.map_iou", m["map_iou"], tol["min_map_iou"], "min"))
    elif kind == "sequence":
        checks.append((f"{name}.step_agreement", m["step_agreement"], tol["min_match"], "min"))
    if m["max_abs"] > ATOL:
        checks.insert(0, (f"{name}.cosine", m["cosine"], tol["min_cosine"], "min"))
    return checks


def passes(value: float, limit: float, kind: str) -> bool:
    """Whether ``value`` holds against ``limit`` (written so that NaN fails)."""
    return bool(value >= limit) if kind == "min" else bool(value <= limit)


# --------------------------------------------------------------------------- bundle files
def load_manifest(bundle: Path) -> dict:
    """The bundle's manifest, its fields checked for the types this runner reads (a list
    where a path is due must be a clear error, not a crash). BundleProblem otherwise."""
    try:
        manifest = json.loads((bundle / MANIFEST).read_text())
    except OSError as e:
        raise BundleProblem(f"{MANIFEST} cannot be read ({e.strerror or e})") from None
    except ValueError as e:  # also a UnicodeDecodeError
        raise BundleProblem(f"{MANIFEST} is not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise BundleProblem(f"{MANIFEST} has no 'files' table")
    why = manifest_problem(manifest)
    if why:
        raise BundleProblem(f"{MANIFEST}: {why}")
    return manifest


# the manifest fields this runner reads, and their JSON types
FIELDS = {"files": dict, "model_file": str, "inputs": list, "outputs": list, "threads": int,
          "runtime": dict, "selftest": dict, "profile": dict}
TENSOR = {"name": str, "dtype": str, "shape": list}
HEX = frozenset("0123456789abcdef")


def _json_type(value) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false",
             int: "an integer", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _wrong(where: str, value, kind: type) -> str:
    return f"'{where}' is {_json_type(value)}, not {_json_type(kind())}"


def manifest_problem(manifest: dict) -> str | None:
    """What makes a manifest unreadable to this runner (a field of the wrong type, a model
    path that leaves the bundle), or None."""
    for key, kind in FIELDS.items():
        value = manifest.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            return _wrong(key, value, kind)
    for rel, digest in manifest["files"].items():
        if not isinstance(digest, str) or len(digest) != 64 or not set(digest) <= HEX:
            return f"'files' entry '{rel}' is {_json_type(digest)}, not a sha256 (64 hex digits)"
    if unsafe_path(manifest["model_file"]):
        return f"'model_file' {manifest['model_file']!r}: {unsafe_path(manifest['model_file'])}"
    for key in ("inputs", "outputs"):
        for i, spec in enumerate(manifest[key]):
            why = _tensor_problem(spec, f"{key}[{i}]")
            if why:
                return why
    if not isinstance(manifest["runtime"].get("options", {}), dict):
        return _wrong("runtime.options", manifest["runtime"]["options"], dict)
    kinds = manifest["selftest"].get("kinds", {})
    if not isinstance(kinds, dict) or not all(isinstance(k, str) and v in OUTPUT_KINDS
                                              for k, v in kinds.items()):
        return f"'selftest.kinds' must map output names to {', '.join(OUTPUT_KINDS)}"
    return _preprocessing_problem(manifest.get("preprocessing"))


# the preprocessing fields run.py reads, per kind, and their JSON types
PREPROCESSING = {
    "image": {"input": str, "size": list, "resize": int, "crop": str, "scale": float,
              "mean": list, "std": list, "channels": str, "layout": str},
    "audio": {"input": str, "sample_rate": int, "frame_length": int},
}


def _preprocessing_problem(prep) -> str | None:
    if prep is None:
        return None
    if not isinstance(prep, dict):
        return _wrong("preprocessing", prep, dict)
    for key, kind in PREPROCESSING.get(prep.get("kind"), {}).items():
        value = prep.get(key)
        ok = isinstance(value, int | float) if kind is float else isinstance(value, kind)
        if not ok or isinstance(value, bool):
            return _wrong(f"preprocessing.{key}", value, kind)
        if kind is list and not all(isinstance(v, int | float) and not isinstance(v, bool)
                                    for v in value):
            return f"'preprocessing.{key}' {value} is not a list of numbers"
    size = prep.get("size")
    if prep.get("kind") == "image" and (len(size) != 2 or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        return f"'preprocessing.size' {size} is not [height, width] in pixels"
    return None


def _tensor_problem(spec, where: str) -> str | None:
    if not isinstance(spec, dict):
        return _wrong(where, spec, dict)
    for key, kind in TENSOR.items():
        if not isinstance(spec.get(key), kind):
            return _wrong(f"{where}.{key}", spec.get(key), kind)
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in spec["shape"]):
        return f"'{where}.shape' {spec['shape']} is not a list of integers"
    try:
        np.dtype(spec["dtype"])
    except TypeError:
        return f"'{where}.dtype' {spec['dtype']!r} is not a numpy dtype"
    return None


def unsafe_path(rel: str) -> str | None:
    """Why a manifest path may not be trusted (absolute, '..', backslashes), or None."""
    p = PurePosixPath(rel)
    if not rel or p.is_absolute() or ".." in p.parts or "\\" in rel or p.as_posix() != rel:
        return "path leaves the bundle folder"
    return None


def check_files(bundle: Path, manifest: dict) -> list:
    """Problems with the bundle's files: a path that leaves the folder, a symlink or special
    file, a file missing, changed (sha256) or not listed in the manifest."""
    bad = []
    listed = manifest["files"]
    for rel, digest in sorted(listed.items()):
        why = unsafe_path(rel)
        path = bundle / rel
        if why is None:
            parts = PurePosixPath(rel).parts
            if any((bundle.joinpath(*parts[:i + 1])).is_symlink() for i in range(len(parts))):
                why = "is a symlink"
            elif not path.is_file():
                why = "missing"
            elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
                why = "sha256 mismatch"
        if why:
            bad.append(f"{rel}: {why}")
    for path in sorted(bundle.rglob("*")):
        rel = path.relative_to(bundle).as_posix()
        if path.is_symlink():
            if rel not in listed:
                bad.append(f"{rel}: is a symlink")
        elif not path.is_file() and not path.is_dir():
            bad.append(f"{rel}: is not a regular file")  # a FIFO, a socket, a device
        elif path.is_file() and rel != MANIFEST and rel not in listed \
                and "__pycache__" not in path.parts:
            bad.append(f"{rel}: not listed in the manifest")
    for rel in (manifest.get("model_file"), BACKEND_FILE, "run.py"):
        if rel not in listed:
            bad.append(f"{rel}: not covered by the manifest's checksums")
    return bad


def tolerance(manifest: dict) -> dict:
    t = manifest["selftest"]
    keys = ("min_cosine", "max_rel_error", "min_match", "min_map_iou", "max_floor_rel_error")
    return {**{k: t[k] for k in keys if k in t}, "kinds": dict(t.get("kinds", {}))}


def selftest(bundle: Path) -> int:
    """Checksums, then the golden inputs through the runtime against the golden outputs."""
    manifest = load_manifest(bundle)
    bad = check_files(bundle, manifest)
    if bad:
        print("selftest FAILED: files do not match the manifest: " + "; ".join(bad))
        return 1
    inputs = load_npz(bundle / "golden" / "inputs.npz")
    names = [o["name"] for o in manifest["outputs"]]
    expected = unpack(load_npz(bundle / "golden" / "outputs.npz"), names)
    with open_model(bundle, manifest) as model:
        outputs = run_samples(model, inputs)
        info = model.info
    tol = tolerance(manifest)
    failures = []
    for name in names:
        m = compare(expected[name], outputs[name], tol["kinds"].get(name, "values"))
        checks = output_checks(name, m, tol)
        print(f"  {name}: " + ", ".join(
            f"{c[0].rpartition('.')[2]} {c[1]:.6g} ({'>=' if c[3] == 'min' else '<='} {c[2]:g})"
            for c in checks) + (f" [{m['error']}]" if "error" in m else ""))
        if not all(passes(c[1], c[2], c[3]) for c in checks):
            failures.append(name)
    where = f"{info.get('runtime')} {info.get('version')}"
    if failures:
        print(f"selftest FAILED on {where}: outputs {', '.join(failures)} outside tolerance")
        return 1
    print(f"selftest passed on {where}: {len(manifest['files'])} files verified, "
          f"{len(names)} output(s) match the reference on {sample_count(inputs)} sample(s)")
    return 0


def read_input_file(path: Path, manifest: dict) -> tuple:
    """Arrays of an ``infer`` input file as ``[N, *shape]``, and whether it held one sample
    without the samples axis. An image or WAV file is one sample, by the manifest's
    preprocessing."""
    specs = manifest["inputs"]
    if media_kind(path) is not None:
        return read_media_file(path, manifest), True
    try:
        if path.suffix == ".npy":
            if len(specs) != 1:
                raise BundleProblem(f"{path}: a .npy file can only feed a single-input model")
            arrays = {specs[0]["name"]: np.load(path, allow_pickle=False)}
        else:
            arrays = load_npz(path)
    except (OSError, ValueError, EOFError) as e:
        raise BundleProblem(f"{path} is not a readable .npz/.npy file ({e})") from None
    missing = [s["name"] for s in specs if s["name"] not in arrays]
    if missing:
        raise BundleProblem(f"{path} has no array for input(s) {', '.join(missing)}")
    single = all(arrays[s["name"]].ndim == len(s["shape"]) for s in specs)
    out = {}
    for s in specs:
        arr = arrays[s["name"]]
        out[s["name"]] = arr[None] if single else arr
    return out, single


def infer(bundle: Path, in_path: Path, out_path: Path | None) -> int:
    manifest = load_manifest(bundle)
    arrays, single = read_input_file(in_path, manifest)
    with open_model(bundle, manifest) as model:
        outputs = run_samples(model, arrays)
    result = {k: v[0] for k, v in outputs.items()} if single else pack(outputs)
    out_path = out_path or in_path.with_name(in_path.stem + "_outputs.npz")
    np.savez(out_path, **result)
    for name, arr in result.items():
        print(f"{name}: shape {list(arr.shape)} dtype {arr.dtype}")
    print(f"wrote {out_path}")
    return 0


# --------------------------------------------------------------------------- timing
def percentile(sorted_values: list, q: float) -> float:
    """Linear-interpolated percentile of an already sorted list (q in 0..100)."""
    k = (len(sorted_values) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def time_inference(run, feeds: dict, warmup: int = 10, runs: int | None = None,
                   min_time: float | None = None) -> dict:
    """Time ``run(feeds)``: ``warmup`` untimed calls, then ``runs`` calls or at least
    ``min_time`` seconds (and at least 10 calls). Returns milliseconds per call."""
    if runs is None and min_time is None:
        min_time = 1.0
    for _ in range(warmup):
        run(feeds)
    times = []
    start = time.perf_counter_ns()
    while True:
        t0 = time.perf_counter_ns()
        run(feeds)
        times.append(time.perf_counter_ns() - t0)
        if runs is not None:
            if len(times) >= runs:
                break
        elif len(times) >= 10 and time.perf_counter_ns() - start >= min_time * 1e9:
            break
    ms = sorted(t / 1e6 for t in times)
    return {
        "p50": percentile(ms, 50), "p90": percentile(ms, 90), "p99": percentile(ms, 99),
        "mean": sum(ms) / len(ms), "min": ms[0], "max": ms[-1], "runs": len(ms),
        "warmup": warmup,
    }


def _proc_status(key: str) -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def rss_bytes() -> int:
    """Current resident set size of this process (Linux), 0 where unknown."""
    return _proc_status("VmRSS")


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far. On Linux VmHWM, since getrusage's
    ru_maxrss starts from the parent's RSS at fork and survives exec."""
    peak = _proc_status("VmHWM")
    if peak:
        return peak
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def bench_bundle(bundle: Path, runs=None, min_time=None, warmup=10, threads=None) -> dict:
    """Cold start (load, first inference), steady-state latency and peak RSS of this bundle's
    model on its first golden sample."""
    manifest = load_manifest(bundle)
    feeds = {k: np.asarray(v[0]) for k, v in load_npz(bundle / "golden" / "inputs.npz").items()}
    rss_before = rss_bytes()
    t0 = time.perf_counter_ns()
    model = open_model(bundle, manifest, threads).load()
    t1 = time.perf_counter_ns()
    model.infer(feeds)
    t2 = time.perf_counter_ns()
    latency = time_inference(model.backend.run, feeds, warmup, runs, min_time)
    model.close()
    return {
        "latency_ms": latency,
        "cold_start_ms": {"load": (t1 - t0) / 1e6, "first_inference": (t2 - t1) / 1e6},
        "memory": {"peak_rss_bytes": peak_rss_bytes(), "rss_before_load_bytes": rss_before},
        "threads": threads or manifest["threads"],
        "runtime": model.info,
        "machine": {"platform": sys.platform, "machine": os.uname().machine,
                    "cpus": os.cpu_count()},
    }


def bench(bundle: Path, runs, min_time, warmup, threads, json_out: Path | None = None) -> int:
    text = json.dumps(bench_bundle(bundle, runs, min_time, warmup, threads), indent=2)
    print(text)
    if json_out is not None:
        json_out.write_text(text + "\n")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=Path(__file__).resolve().parent,
                        help="bundle directory (default: the folder holding this script)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("selftest", help="verify checksums and golden outputs")
    p_infer = sub.add_parser("infer", help="run the model on an .npz/.npy file, or on an "
                             "image or WAV file (the bundle's declared preprocessing)")
    p_infer.add_argument("input", type=Path)
    p_infer.add_argument("-o", "--output", type=Path)
    p_bench = sub.add_parser("bench", help="time the model on the golden input, print JSON")
    group = p_bench.add_mutually_exclusive_group()
    group.add_argument("--runs", type=int)
    group.add_argument("--min-time", type=float)
    p_bench.add_argument("--warmup", type=int, default=10)
    p_bench.add_argument("--threads", type=int)
    p_bench.add_argument("--json", type=Path, help="also write the result to this file")
    args = parser.parse_args(argv)
    try:
        if args.command == "selftest":
            return selftest(args.bundle)
        if args.command == "infer":
            return infer(args.bundle, args.input, args.output)
        return bench(args.bundle, args.runs, args.min_time, args.warmup, args.threads,
                     args.json)
    except BundleProblem as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
