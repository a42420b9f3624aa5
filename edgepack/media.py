"""Data as users have it: a folder of images, a folder of WAV files, a text file with one
sample per line (and a tokenizer.json), read into samples by a preprocessing record
(:mod:`edgepack.preprocessing`).

A folder holds its files at the top level (unlabelled), or in one sub-folder per class
(ImageNet style: ``train/cat/1.png``): a class's index is its folder name's place in the
sorted names of every folder given (``--data``, ``--calib``, ``--eval`` agree), or its line in
a labels file, or its index among the model's own class names when they name every folder.
Images and WAV files go through ``edgepack.device.core``, the code ``run.py infer`` runs on
the device. Hidden files and files of other kinds are left out. DataError (exit 2) for
anything unreadable, naming the file.
"""

from __future__ import annotations

import ast
import json
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgepack.artifact import TensorSpec, sha256_file
from edgepack.device import core
from edgepack.errors import DataError, MissingExtraError

SUFFIXES = {"image": core.IMAGE_SUFFIXES, "audio": core.AUDIO_SUFFIXES}
ALL_SUFFIXES = core.IMAGE_SUFFIXES + core.AUDIO_SUFFIXES
TEXT_SUFFIXES = (".txt",)
METADATA_KEYS = ("labels", "classes", "class_names", "names")  # model metadata with classes
EXTRA = "data"  # pip install 'edgepack[data]': Pillow and tokenizers


@dataclass(frozen=True)
class Folder:
    """What a data folder holds: its kind, and each file with its class (None: unlabelled)."""

    path: Path
    kind: str  # "image" or "audio"
    files: tuple[Path, ...]
    classes: tuple[str | None, ...]

    @property
    def labelled(self) -> bool:
        return bool(self.classes) and self.classes[0] is not None


def data_kind(path: Path, role: str) -> str:
    """"arrays" (.npz/.npy), "image", "audio" (a folder) or "text" (.txt); DataError for
    anything else."""
    if path.is_dir():
        return scan(path, role).kind
    suffix = path.suffix.lower()
    if suffix in (".npz", ".npy"):
        return "arrays"
    if suffix in TEXT_SUFFIXES:
        return "text"
    raise DataError(f"{role} {path}: expected a .npz or .npy file, a folder of images or WAV "
                    "files, or a .txt file (one sample per line)")


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _media(folder: Path) -> list[Path]:
    """The visible image and WAV files directly in ``folder``."""
    return [p for p in _visible(folder) if p.is_file() and p.suffix.lower() in ALL_SUFFIXES]


def scan(path: Path, role: str) -> Folder:
    """The images or WAV files of a folder: at its top level (unlabelled), or in one
    sub-folder per class (every sub-folder is a class, and holds some)."""
    top = _media(path)
    subs = [p for p in _visible(path) if p.is_dir()]
    if top and any(_media(s) for s in subs):
        raise DataError(f"{role} {path}: holds files at its top level and in sub-folders; put "
                        "every file in a class sub-folder (labelled), or all at the top level")
    if top or not subs:
        return _folder(path, role, [(p, None) for p in top])
    files = []
    for sub in subs:
        found = _media(sub)
        if not found:
            raise DataError(f"{role} {path}: class folder '{sub.name}' holds no images or WAV "
                            f"files ({', '.join(ALL_SUFFIXES)})")
        files += [(p, sub.name) for p in found]
    return _folder(path, role, files)


def _folder(path: Path, role: str, files: list) -> Folder:
    kinds = {k for p, _ in files for k, s in SUFFIXES.items() if p.suffix.lower() in s}
    if not kinds:
        raise DataError(f"{role} {path}: a folder with no images or WAV files "
                        f"({', '.join(ALL_SUFFIXES)}), at its top level or in class "
                        "sub-folders")
    if len(kinds) > 1:
        raise DataError(f"{role} {path}: holds both images and WAV files; give one kind per "
                        "folder")
    return Folder(path, kinds.pop(), tuple(p for p, _ in files), tuple(c for _, c in files))


def wav_rates(folders: Sequence[Folder]) -> dict[int, Path]:
    """Each sample rate found in these WAV folders, with one file that has it."""
    rates: dict[int, Path] = {}
    for folder in folders:
        for path in folder.files:
            try:
                with wave.open(str(path), "rb") as f:
                    rates.setdefault(f.getframerate(), path)
            except (wave.Error, EOFError, OSError, ValueError) as e:
                raise DataError(f"{path}: not a PCM WAV file ({core.first_line(e)})") from None
    return rates


# --------------------------------------------------------------------------- classes
def class_index(folders: Sequence[Folder], labels_file: Path | None,
                metadata: dict[str, str]) -> dict | None:
    """``{"from": how, "index": {folder name: class index}}`` for labelled folders, else None.
    From the labels file when given, else the model's class names when they name every
    folder, else the sorted folder names."""
    names = sorted({c for f in folders for c in f.classes if c is not None})
    if not names:
        return None
    if labels_file is not None:
        known, how = _labels_file(labels_file), f"each folder's line in {labels_file.name}"
        missing = [n for n in names if n not in known]
        if missing:
            raise DataError(f"--labels {labels_file}: names no class '{missing[0]}' (a "
                            f"sub-folder of the data); {len(missing)} folder(s) missing from it")
    else:
        known, key = _model_classes(metadata)
        how = f"each folder's index in the model's class names (metadata '{key}')"
        if not set(names) <= set(known):
            known = {n: i for i, n in enumerate(names)}
            how = "the sorted sub-folder names (" + ", ".join(
                f"{n}: {i}" for n, i in list(known.items())[:4]) + (
                ", ...)" if len(names) > 4 else ")")
    return {"from": how, "index": {n: known[n] for n in names}}


def _labels_file(path: Path) -> dict[str, int]:
    """Class name -> index from a file of one name per line (line i is class i)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"--labels {path}: cannot be read as UTF-8 text ({e})") from None
    index: dict[str, int] = {}
    for i, line in enumerate(lines):
        name = line.strip()
        if name and name in index:
            raise DataError(f"--labels {path}: '{name}' is on lines {index[name] + 1} and "
                            f"{i + 1}; each class name once")
        if name:
            index[name] = i
    if not index:
        raise DataError(f"--labels {path}: holds no class names (one per line)")
    return index


def _model_classes(metadata: dict[str, str]) -> tuple[dict[str, int], str | None]:
    """Class names from the model's metadata: a JSON list, or a {index: name} mapping (JSON
    or a Python literal, as Ultralytics writes it)."""
    for key in METADATA_KEYS:
        text = metadata.get(key)
        if not text:
            continue
        try:
            value = json.loads(text)
        except ValueError:
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                continue
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return {v: i for i, v in enumerate(value)}, key
        if isinstance(value, dict):
            try:
                return {str(v): int(k) for k, v in value.items()}, key
            except (TypeError, ValueError):
                continue
    return {}, None


# --------------------------------------------------------------------------- reading
def read_folder(folder: Folder, record: dict, spec: TensorSpec, classes: dict | None,
                role: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Every file of the folder as samples ``[N, *spec.shape]``, and their labels."""
    samples = []
    for path in folder.files:
        try:
            if folder.kind == "image":
                samples.append(core.image_sample(_decode(path), record, list(spec.shape),
                                                 spec.dtype))
            else:
                rate, wave = core.read_wav(path)
                samples.append(core.audio_sample(wave, rate, record, list(spec.shape),
                                                 spec.dtype, f"{role} {path}"))
        except core.BundleProblem as e:
            raise DataError(str(e)) from None
    labels = None
    if folder.labelled and classes is not None:
        labels = np.array([classes["index"][c] for c in folder.classes], np.int64)
    return np.stack(samples), labels


def _decode(path: Path) -> np.ndarray:
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise MissingExtraError("Pillow", EXTRA, "reading images") from None
    return core.decode_image(path)


def load_tokenizer(path: Path):
    """(the tokenizer, its record for the report: file, sha256, pad_id). MissingExtraError
    without the tokenizers package; DataError for a file it cannot read."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise MissingExtraError("tokenizers", EXTRA, "text data (a .txt file)") from None
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as e:  # noqa: BLE001 - the library raises plain Exception
        raise DataError(f"--tokenizer {path}: not a tokenizer.json the tokenizers package "
                        f"reads ({core.first_line(e)})") from None
    pad = (tok.padding or {}).get("pad_id")
    for token in ("[PAD]", "<pad>", "<|pad|>"):
        if pad is None:
            pad = tok.token_to_id(token)
    return tok, {"file": path.name, "sha256": sha256_file(path), "pad_id": int(pad or 0)}


def read_text(path: Path, record: dict, tokenizer, inputs: Sequence[TensorSpec],
              role: str) -> dict[str, np.ndarray]:
    """One sample per non-blank line: token ids truncated to ``max_tokens`` and padded to
    the input's length, with the attention mask and token type ids the model takes."""
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{role} {path}: cannot be read as UTF-8 text ({e})") from None
    if not lines:
        raise DataError(f"{role} {path}: holds no lines of text (one sample per line)")
    names, n = record["inputs"], record["max_tokens"]
    pad = record["tokenizer"]["pad_id"]
    rows = {k: np.zeros((len(lines), record["length"]), np.int64) for k in names}
    rows["ids"][:] = pad
    for i, encoding in enumerate(tokenizer.encode_batch(lines)):
        ids = encoding.ids[:n]
        rows["ids"][i, :len(ids)] = ids
        rows["mask"][i, :len(ids)] = 1
        rows["type_ids"][i, :len(ids)] = encoding.type_ids[:n]
    specs = {s.name: s for s in inputs}
    return {name: rows[k].reshape(len(lines), *specs[name].shape).astype(specs[name].dtype)
            for k, name in names.items() if name is not None}
