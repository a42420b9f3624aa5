"""Importers bring a user's model to ONNX, and run it in its own framework as the reference.

Formats: ONNX (``.onnx``), PyTorch (an entry point ``file.py:make_model``, TorchScript
``.pt``/``.pth``/``.ts``, ExportedProgram ``.pt2``), Keras (``.keras``, legacy
``.h5``/``.hdf5``), TensorFlow SavedModel folders, and TFLite (``.tflite``). Each importer is
its own module, loaded only when its format is used.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from edgepack.errors import ModelError

FORMATS = {
    ".onnx": "onnx",
    ".pt": "torch", ".pth": "torch", ".ts": "torch", ".pt2": "torch",
    ".keras": "keras", ".h5": "keras", ".hdf5": "keras",
    ".tflite": "tflite",
}
IMPORTERS = {"torch": "edgepack.importers.pytorch", "keras": "edgepack.importers.tf",
             "saved-model": "edgepack.importers.tf", "tflite": "edgepack.importers.tflite"}
ENTRY = re.compile(r"^(?P<file>.+\.py):(?P<name>[A-Za-z_][A-Za-z0-9_]*)$")


def parse_model(text: str | Path, weights: Path | None = None, trust_pickle: bool = False):
    """The Source a MODEL argument names; ModelError when it is missing or not a format
    edgepack reads."""
    from edgepack.importers.base import Source

    text = str(text)
    match = ENTRY.match(text)
    if match:
        path = Path(match["file"])
        if not path.is_file():
            raise ModelError(f"entry point file {path} does not exist")
        return Source(path, "torch", match["name"], weights, trust_pickle)
    path = Path(text)
    if text.endswith(".py"):
        raise ModelError(f"{path}: a Python file needs the function that builds the model: "
                         f"{path}:make_model (a function returning a torch.nn.Module)")
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return Source(path, "saved-model", None, weights, trust_pickle)
        raise ModelError(f"{path} is a folder but not a TensorFlow SavedModel (no "
                         "saved_model.pb)")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ModelError(
            f"{path}: unknown model format '{path.suffix}'; edgepack reads "
            + ", ".join(sorted(FORMATS)) + " files, TensorFlow SavedModel folders and PyTorch "
            "entry points (file.py:make_model)")
    if not path.exists():
        raise ModelError(f"model file {path} does not exist")
    if weights is not None and fmt != "torch":
        raise ModelError("--weights goes with a PyTorch entry point (file.py:make_model)")
    return Source(path, fmt, None, weights, trust_pickle)


def detect_format(path: str | Path) -> str:
    """The model format of a MODEL argument (ModelError when edgepack cannot read it)."""
    return parse_model(path).format


def get_importer(fmt: str):
    """The importer of a (non-ONNX) format."""
    return importlib.import_module(IMPORTERS[fmt]).IMPORTER


def all_importer_toolchains() -> list:
    """The isolated environments importers run in (for `edgepack toolchain`)."""
    chains = []
    for module in dict.fromkeys(IMPORTERS.values()):
        chain = getattr(importlib.import_module(module).IMPORTER, "toolchain", None)
        if chain is not None and chain not in chains:
            chains.append(chain)
    return chains
