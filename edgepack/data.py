"""Datasets: the inputs used to calibrate quantization and to evaluate bundles.

A dataset is a set of arrays keyed by model input name whose first dimension counts
samples, plus optional integer ``labels`` (one per sample). Sources:

* ``.npz`` with one array per input name (and optionally ``labels``);
* ``.npy`` holding the single input of a single-input model;
* seeded synthetic data, labelled ``"synthetic"`` everywhere it is used.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgepack.artifact import TensorSpec
from edgepack.errors import DataError

LABELS_KEY = "labels"
SYNTHETIC_SAMPLES = 32


@dataclass(frozen=True)
class Dataset:
    """Arrays per input ([samples, ...]), optional labels, and where they came from."""

    arrays: dict[str, np.ndarray]
    labels: np.ndarray | None
    kind: str  # "labelled", "unlabelled" or "synthetic"
    source: str
    batch: int = 1  # the model's batch size: one feed holds this many samples

    @property
    def samples(self) -> int:
        return len(next(iter(self.arrays.values())))

    def __len__(self) -> int:
        """Number of feeds (model invocations); a trailing partial batch is dropped."""
        return self.samples // self.batch

    def feed(self, i: int) -> dict[str, np.ndarray]:
        lo = i * self.batch
        return {k: v[lo:lo + self.batch] for k, v in self.arrays.items()}

    def feeds(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(len(self)):
            yield self.feed(i)

    def head(self, feeds: int) -> Dataset:
        """The first ``feeds`` feeds as a new dataset."""
        n = min(feeds, len(self)) * self.batch
        labels = None if self.labels is None else self.labels[:n]
        return Dataset({k: v[:n] for k, v in self.arrays.items()}, labels, self.kind,
                       self.source, self.batch)

    def used_labels(self) -> np.ndarray | None:
        return None if self.labels is None else self.labels[: len(self) * self.batch]

    def save(self, path: Path) -> None:
        """Write as .npz (the exchange format between edgepack's processes)."""
        extra = {} if self.labels is None else {LABELS_KEY: self.labels}
        np.savez(path, **self.arrays, **extra)


def load_dataset(path: Path, inputs: Sequence[TensorSpec], role: str) -> Dataset:
    """Load ``.npz``/``.npy`` data for a model with these (static) inputs.

    ``role`` names the flag in messages (``--data``, ``--calib``, ``--eval``).
    Raises DataError when the file is missing or malformed or does not fit the inputs.
    """
    if not path.is_file():
        raise DataError(f"{role} file {path} does not exist")
    arrays = _read_arrays(path, inputs, role)
    labels = arrays.pop(LABELS_KEY, None)
    names = [s.name for s in inputs]
    missing = [n for n in names if n not in arrays]
    extra = [k for k in arrays if k not in names]
    if missing or extra:
        raise DataError(
            f"{role} {path.name}: arrays are keyed {', '.join(sorted(arrays)) or '(none)'}, but "
            f"the model's inputs are {', '.join(names)} (plus an optional '{LABELS_KEY}' array)"
        )
    batch = _batch_size(inputs)
    counts = set()
    for spec in inputs:
        counts.add(_check_array(arrays[spec.name], spec, batch, f"{role} {path.name}"))
    if len(counts) > 1:
        raise DataError(f"{role} {path.name}: inputs hold different numbers of samples {counts}")
    n = counts.pop()
    if labels is not None:
        labels = _check_labels(labels, n, f"{role} {path.name}")
    kind = "unlabelled" if labels is None else "labelled"
    return Dataset(arrays, labels, kind, str(path), batch)


def _read_arrays(path: Path, inputs: Sequence[TensorSpec], role: str) -> dict[str, np.ndarray]:
    try:
        if path.suffix == ".npy":
            if len(inputs) != 1:
                raise DataError(
                    f"{role} {path.name}: a .npy file can only feed a single-input model; this "
                    f"one has {len(inputs)} inputs: pass an .npz keyed by input name"
                )
            return {inputs[0].name: np.load(path, allow_pickle=False)}
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{role} {path}: not a readable numpy file ({e})") from None
    raise DataError(f"{role} {path}: expected a .npz or .npy file")


def _batch_size(inputs: Sequence[TensorSpec]) -> int:
    first = inputs[0].shape
    return first[0] if first and isinstance(first[0], int) else 1


def _check_array(arr: np.ndarray, spec: TensorSpec, batch: int, where: str) -> int:
    per_sample = tuple(spec.shape[1:])
    if arr.dtype != np.dtype(spec.dtype):
        raise DataError(
            f"{where}: '{spec.name}' has dtype {arr.dtype}, the model expects {spec.dtype}; "
            f"convert it with arr.astype(np.{spec.dtype})"
        )
    if arr.ndim != len(spec.shape) or tuple(arr.shape[1:]) != per_sample:
        want = "[N, " + ", ".join(map(str, per_sample)) + "]"
        raise DataError(
            f"{where}: '{spec.name}' has shape {list(arr.shape)}, the model expects {want} "
            f"(N samples of input shape {spec.shape_str()})"
        )
    if len(arr) < batch:
        raise DataError(f"{where}: '{spec.name}' has {len(arr)} samples, fewer than one batch")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise DataError(f"{where}: '{spec.name}' contains NaN or infinite values")
    return len(arr)


def _check_labels(labels: np.ndarray, n: int, where: str) -> np.ndarray:
    if labels.ndim != 1 or len(labels) != n or labels.dtype.kind not in "iu":
        raise DataError(
            f"{where}: '{LABELS_KEY}' must be a 1-D integer array with one label per sample "
            f"({n}); got dtype {labels.dtype}, shape {list(labels.shape)}"
        )
    return labels.astype(np.int64)


def synthetic_dataset(inputs: Sequence[TensorSpec], seed: int = 0,
                      samples: int = SYNTHETIC_SAMPLES) -> Dataset:
    """Seeded random inputs: standard normal floats, small non-negative integers, booleans."""
    rng = np.random.default_rng(seed)
    batch = _batch_size(inputs)
    n = max(samples // batch, 1) * batch
    arrays = {}
    for spec in inputs:
        shape = (n, *spec.shape[1:])
        dtype = np.dtype(spec.dtype)
        if dtype.kind == "f":
            arr = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            arr = rng.integers(0, 100, shape).astype(dtype)
        elif dtype.kind == "b":
            arr = rng.integers(0, 2, shape).astype(bool)
        else:
            raise DataError(
                f"input '{spec.name}' has dtype {spec.dtype}, for which edgepack cannot make "
                "synthetic data; pass --data"
            )
        arrays[spec.name] = arr
    return Dataset(arrays, None, "synthetic", f"synthetic (seed {seed}, {n} samples)", batch)


def read_dataset_file(path: Path, batch: int, kind: str | None = None,
                      source: str | None = None) -> Dataset:
    """Read a dataset saved by :meth:`Dataset.save` (edgepack's own exchange file)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    labels = arrays.pop(LABELS_KEY, None)
    kind = kind or ("labelled" if labels is not None else "unlabelled")
    return Dataset(arrays, labels, kind, source or str(path), batch)
