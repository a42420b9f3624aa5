"""Datasets: the inputs used to calibrate quantization and to evaluate bundles.

One *sample* is one model invocation's full feed: ``arrays[name][i]`` is input ``name`` of
sample ``i``, shaped exactly like the model's input. Nothing assumes the model has a batch
axis, or where it is (a recurrent state ``[2, 1, H]`` beside a frame ``[1, T]`` is fine).

Files a user gives (``--data``, ``--calib``, ``--eval``):

* ``.npz`` with one array per input name, ``[N, *input_shape]`` (a leading samples axis), or
  ``[N * B, *input_shape[1:]]`` where the input's first axis is a batch of ``B`` (samples
  stacked along it); optional integer ``labels`` (for classifiers: one per row of the class
  scores, i.e. ``N`` for a batch-1 classifier);
* ``.npy`` holding the single input of a single-input model, in the same forms;
* a folder of images or WAV files (labelled by class sub-folders), or a ``.txt`` file of one
  sample per line with a tokenizer, read by :mod:`edgepack.media` with the preprocessing
  that :mod:`edgepack.preprocessing` resolves (:func:`plan_reading`);
* seeded synthetic data, labelled ``"synthetic"`` everywhere it is used.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edgepack import media, preprocessing
from edgepack.artifact import TensorSpec
from edgepack.errors import DataError, UsageError, first_line

LABELS_KEY = "labels"
SYNTHETIC_SAMPLES = 32


@dataclass(frozen=True)
class Dataset:
    """Arrays per input (``[samples, *input_shape]``), optional labels, and their origin."""

    arrays: dict[str, np.ndarray]
    labels: np.ndarray | None
    kind: str  # "labelled", "unlabelled" or "synthetic"
    source: str

    @property
    def samples(self) -> int:
        return len(next(iter(self.arrays.values()))) if self.arrays else 0

    def __len__(self) -> int:
        return self.samples

    def feed(self, i: int) -> dict[str, np.ndarray]:
        return {k: np.asarray(v[i]) for k, v in self.arrays.items()}

    def feeds(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(self.samples):
            yield self.feed(i)

    def subset(self, indices: Sequence[int] | np.ndarray, source: str | None = None) -> Dataset:
        """The samples at ``indices``, in that order."""
        idx = np.asarray(indices, dtype=np.int64)
        labels = None
        if self.labels is not None:
            per = len(self.labels) // max(self.samples, 1)
            labels = self.labels.reshape(self.samples, per)[idx].reshape(-1)
        return replace(self, arrays={k: v[idx] for k, v in self.arrays.items()}, labels=labels,
                       source=source or self.source)

    def only(self, names) -> Dataset:
        """The same samples with only the arrays of ``names`` (e.g. a prepared model's inputs)."""
        keep = set(names)
        return replace(self, arrays={k: v for k, v in self.arrays.items() if k in keep})

    def with_fixed(self, fixed: dict[str, np.ndarray]) -> Dataset:
        """Add inputs fixed to one value (``--fix-input``), repeated for every sample."""
        n = self.samples
        extra = {k: np.broadcast_to(v, (n, *v.shape)).copy() for k, v in fixed.items()}
        return replace(self, arrays={**self.arrays, **extra})

    def head(self, n: int) -> Dataset:
        """The first ``n`` samples."""
        return self.subset(np.arange(min(n, self.samples)))

    def split(self, fraction: float, seed: int) -> tuple[Dataset, Dataset, dict]:
        """A seeded random split: (``fraction`` of the samples, the rest, a record of it)."""
        order = np.random.default_rng(seed).permutation(self.samples)
        k = min(max(1, round(self.samples * fraction)), self.samples - 1)
        first, rest = np.sort(order[:k]), np.sort(order[k:])
        record = {"seed": seed, "calib_samples": int(k), "eval_samples": int(len(rest)),
                  "source": self.source}
        return (self.subset(first, f"{self.source}, {k} of {self.samples} samples (seed {seed})"),
                self.subset(rest, f"{self.source}, the other {len(rest)} samples"), record)

    def save(self, path: Path) -> None:
        """Write as .npz (the exchange format between edgepack's processes)."""
        extra = {} if self.labels is None else {LABELS_KEY: self.labels}
        np.savez(path, **self.arrays, **extra)


def check_data_file(path: Path, role: str) -> None:
    """DataError unless ``path`` (named by ``role``: ``--data``, ``--calib``, ``--eval``) is
    an existing file or folder."""
    if not path.is_file() and not path.is_dir():
        raise DataError(f"{role} file {path} does not exist" if not path.exists()
                        else f"{role} {path} is not a file or a folder")


@dataclass(frozen=True)
class Reading:
    """How data of one kind beside arrays becomes samples: the preprocessing record (the
    report's and the manifest's), the class index of labelled folders, the tokenizer."""

    record: dict
    classes: dict | None = None
    tokenizer: object = None


def plan_reading(paths: dict[str, Path], inputs: Sequence[TensorSpec], given: dict,
                 labels: Path | None = None, tokenizer: Path | None = None,
                 metadata: dict[str, str] | None = None) -> Reading | None:
    """One Reading for every data path given (by role, e.g. ``{"--calib": folder}``): they
    are arrays (None), or all of one other kind. UsageError for preprocessing options that
    the data does not use; DataError for data the inputs cannot take."""
    kinds = {role: media.data_kind(path, role) for role, path in paths.items()}
    kind = check_data_kinds(paths, given, labels, tokenizer)
    if kind == "arrays":
        return None
    if kind == "text":
        tok, described = media.load_tokenizer(tokenizer)
        return Reading(preprocessing.resolve(kind, inputs, given, tokenizer=described),
                       tokenizer=tok)
    folders = [media.scan(paths[role], role) for role, k in kinds.items() if k == kind]
    rates = media.wav_rates(folders) if kind == "audio" and "sample_rate" not in given else {}
    record = preprocessing.resolve(kind, inputs, given, rates=rates)
    return Reading(record, media.class_index(folders, labels, metadata or {}))


def check_data_kinds(paths: dict[str, Path], given: dict, labels: Path | None = None,
                     tokenizer: Path | None = None) -> str:
    """The kind of the data paths given (by role): "arrays", or the one other kind they all
    are. UsageError for kinds mixed, a preprocessing option, --labels or --tokenizer the data
    does not use, and a text file without --tokenizer; DataError for a path of no kind."""
    kinds = {role: media.data_kind(path, role) for role, path in paths.items()}
    other = {k for k in kinds.values() if k != "arrays"}
    if len(other) > 1:
        raise UsageError("the data paths are of different kinds (" + ", ".join(
            f"{role} {preprocessing.WORDS[k]}" for role, k in kinds.items()) + "); give one "
            "kind, or .npz arrays for some")
    kind = other.pop() if other else "arrays"
    _check_applies(kind, given, labels, tokenizer)
    return kind


def _check_applies(kind: str, given: dict, labels: Path | None, tokenizer: Path | None) -> None:
    words = preprocessing.WORDS[kind]
    unused = [k for k in given if k not in preprocessing.APPLIES.get(kind, ())]
    if unused:
        users = [w for k, w in preprocessing.WORDS.items()
                 if unused[0] in preprocessing.APPLIES.get(k, ())]
        raise UsageError(f"--preprocess {unused[0]} applies to {users[0]}; the data given is "
                         f"{words}" + (" (or none)" if kind == "arrays" else ""))
    if labels is not None and kind not in ("image", "audio"):
        raise UsageError(f"--labels names the classes of data in class sub-folders; the data "
                         f"given is {words}" + (" (or none)" if kind == "arrays" else ""))
    if tokenizer is not None and kind != "text":
        raise UsageError(f"--tokenizer turns a .txt file's lines into token ids; the data given "
                         f"is {words}" + (" (or none)" if kind == "arrays" else ""))
    if kind == "text" and tokenizer is None:
        raise UsageError("a .txt file's lines become token ids by a tokenizer: pass "
                         "--tokenizer FILE (a tokenizer.json)")


def load_dataset(path: Path, inputs: Sequence[TensorSpec], role: str,
                 ignore: Sequence[str] = (), reading: Reading | None = None) -> Dataset:
    """Load data for a model with these (static) inputs: ``.npz``/``.npy`` arrays, or a
    folder or text file read by ``reading`` (planned for this path alone, with the defaults,
    when not given).

    ``role`` names the flag in messages (``--data``, ``--calib``, ``--eval``); arrays named
    in ``ignore`` (inputs fixed to a constant) are dropped. Raises DataError when the file is
    missing or malformed or does not fit the inputs.
    """
    check_data_file(path, role)
    if media.data_kind(path, role) != "arrays":
        free = [s for s in inputs if s.name not in ignore]
        return _load_media(path, free, role, reading or plan_reading({role: path}, free, {}))
    where = f"{role} {path.name}"
    arrays = _read_arrays(path, inputs, role)
    for name in ignore:
        arrays.pop(name, None)
    labels = arrays.pop(LABELS_KEY, None)
    names = [s.name for s in inputs]
    missing = [n for n in names if n not in arrays]
    extra = [k for k in arrays if k not in names]
    if missing or extra:
        raise DataError(
            f"{where}: arrays are keyed {', '.join(sorted(arrays)) or '(none)'}, but the "
            f"model's inputs are {', '.join(names)} (plus an optional '{LABELS_KEY}' array)")
    samples = {spec.name: as_samples(arrays[spec.name], spec, where) for spec in inputs}
    counts = {len(v) for v in samples.values()}
    if len(counts) > 1:
        raise DataError(f"{where}: the inputs hold different numbers of samples: " + ", ".join(
            f"{k} {len(v)}" for k, v in samples.items()) + "; every input needs one entry "
            "per sample (model invocation)")
    n = counts.pop()
    if n == 0:
        raise DataError(f"{where}: holds no samples")
    for name, arr in samples.items():
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            bad = int(np.count_nonzero(~np.isfinite(arr)))
            raise DataError(f"{where}: '{name}' contains {bad} NaN or infinite value(s)")
    if labels is not None:
        labels = _check_labels(labels, n, where)
    return Dataset(samples, labels, "unlabelled" if labels is None else "labelled", str(path))


def _load_media(path: Path, inputs: Sequence[TensorSpec], role: str,
                reading: Reading) -> Dataset:
    """A folder of images or WAV files, or a text file, as a Dataset."""
    record = reading.record
    if record["kind"] == "text":
        arrays = media.read_text(path, record, reading.tokenizer, inputs, role)
        n = len(next(iter(arrays.values())))
        return Dataset(arrays, None, "unlabelled", f"{path} ({n} lines, tokenized)")
    folder = media.scan(path, role)
    spec = next(s for s in inputs if s.name == record["input"])
    samples, labels = media.read_folder(folder, record, spec, reading.classes, role)
    what = "images" if folder.kind == "image" else "WAV files"
    classes = sorted(set(folder.classes)) if folder.labelled else []
    where = f" in {len(classes)} class folders" if classes else ""
    return Dataset({spec.name: samples}, labels, "labelled" if labels is not None
                   else "unlabelled", f"{path} ({len(samples)} {what}{where})")


def _read_arrays(path: Path, inputs: Sequence[TensorSpec], role: str) -> dict[str, np.ndarray]:
    try:
        if path.suffix == ".npy":
            if len(inputs) != 1:
                raise DataError(
                    f"{role} {path.name}: a .npy file can only feed a single-input model; this "
                    f"one has {len(inputs)} inputs: pass an .npz keyed by input name")
            arrays = {inputs[0].name: np.load(path, allow_pickle=False)}
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        else:
            raise DataError(f"{role} {path}: expected a .npz or .npy file")
    except DataError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise DataError(f"{role} {path}: not a readable numpy file ({first_line(e)})") from None
    for name, arr in arrays.items():
        if not isinstance(arr, np.ndarray):
            raise DataError(f"{role} {path.name}: member '{name}' is not a numpy array (a raw "
                            f"{type(arr).__name__} file in the zip); save arrays with np.savez")
        if arr.dtype.kind not in "biuf":
            raise DataError(f"{role} {path.name}: '{name}' has dtype {arr.dtype}, not a numeric "
                            "array; store numbers (float, int or bool)")
    return arrays



def as_samples(arr: np.ndarray, spec: TensorSpec, where: str) -> np.ndarray:
    """``arr`` as ``[N, *spec.shape]``: given so, or as ``[N * B, *shape[1:]]`` for an input
    whose first axis is a batch of ``B``. DataError naming both forms otherwise."""
    shape = tuple(spec.shape)
    if arr.dtype != np.dtype(spec.dtype):
        raise DataError(f"{where}: '{spec.name}' has dtype {arr.dtype}, the model expects "
                        f"{spec.dtype}; convert it with arr.astype(np.{spec.dtype})")
    if arr.ndim == len(shape) + 1 and tuple(arr.shape[1:]) == shape:
        return arr
    if shape and arr.ndim == len(shape) and tuple(arr.shape[1:]) == shape[1:] \
            and shape[0] > 0 and len(arr) % shape[0] == 0 and len(arr) > 0:
        return arr.reshape(len(arr) // shape[0], *shape)
    full = "[N" + "".join(f", {d}" for d in shape) + "]"
    if not shape:
        forms = "[N] (N samples)"
    elif shape[0] == 1:
        forms = f"[N{''.join(f', {d}' for d in shape[1:])}] or {full} (N samples)"
    else:
        rest = "".join(f", {d}" for d in shape[1:])
        forms = f"{full} (N samples), or [N*{shape[0]}{rest}] (samples stacked on the first axis)"
    raise DataError(f"{where}: '{spec.name}' has shape {list(arr.shape)}; the model's input is "
                    f"{spec.dtype}{spec.shape_str()}, so pass {forms}")


def _check_labels(labels: np.ndarray, n: int, where: str) -> np.ndarray:
    if labels.dtype.kind not in "iu" or labels.size == 0 or labels.size % n:
        raise DataError(
            f"{where}: '{LABELS_KEY}' must be an integer array with one label per sample ({n}) "
            f"or per row of a batched classifier's scores; got dtype {labels.dtype}, "
            f"shape {list(labels.shape)}")
    labels = labels.astype(np.int64).reshape(-1)
    negative = labels < 0
    if negative.any():
        i = int(np.argmax(negative))
        raise DataError(f"{where}: '{LABELS_KEY}' holds {int(negative.sum())} negative "
                        f"value(s), e.g. {int(labels[i])} at index {i}; labels are class "
                        "indices 0..classes-1")
    return labels


def check_labels_fit(labels: np.ndarray, classes: int, output: str, where: str) -> None:
    """DataError unless every label indexes the classifier output's ``classes`` scores."""
    bad = labels >= classes
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(
            f"{where}: '{LABELS_KEY}' holds {int(bad.sum())} value(s) outside 0..{classes - 1}, "
            f"e.g. {int(labels[i])} at index {i}; output '{output}' scores {classes} classes")


def synthetic_dataset(inputs: Sequence[TensorSpec], seed: int = 0,
                      samples: int = SYNTHETIC_SAMPLES,
                      ranges: dict[str, tuple[int, int]] | None = None,
                      zeros: Sequence[str] = ()) -> Dataset:
    """Seeded random inputs: standard normal floats (zeros for the inputs in ``zeros``, e.g.
    recurrent states), booleans, and integers in ``ranges[name]`` (low, high inclusive;
    default 0..99)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for spec in inputs:
        shape = (samples, *spec.shape)
        dtype = np.dtype(spec.dtype)
        if spec.name in zeros:
            arr = np.zeros(shape, dtype)
        elif dtype.kind == "f":
            arr = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            lo, hi = (ranges or {}).get(spec.name, (0, 99))
            arr = rng.integers(lo, hi + 1, shape).astype(dtype)
        elif dtype.kind == "b":
            arr = rng.integers(0, 2, shape).astype(bool)
        else:
            raise DataError(
                f"input '{spec.name}' has dtype {spec.dtype}, for which edgepack cannot make "
                "synthetic data; pass --data")
        arrays[spec.name] = arr
    return Dataset(arrays, None, "synthetic", f"synthetic (seed {seed}, {samples} samples)")


def read_dataset_file(path: Path, kind: str | None = None, source: str | None = None) -> Dataset:
    """Read a dataset saved by :meth:`Dataset.save` (edgepack's own exchange file)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    labels = arrays.pop(LABELS_KEY, None)
    kind = kind or ("labelled" if labels is not None else "unlabelled")
    return Dataset(arrays, labels, kind, source or str(path))
