"""Importers bring a user's model to ONNX. Each returns a ModelArtifact of an ONNX file."""

from __future__ import annotations

from pathlib import Path

from edgepack.errors import ModelError

# extension -> (format name, importer module or None when not supported yet)
FORMATS = {
    ".onnx": "onnx",
    ".pt": "torch",
    ".pt2": "torch",
    ".pth": "torch",
    ".keras": "tensorflow",
    ".h5": "tensorflow",
    ".tflite": "tflite",
}


def detect_format(path: Path) -> str:
    """The model format from the file name, or ModelError when it is not one edgepack reads."""
    if path.is_dir() and (path / "saved_model.pb").is_file():
        fmt = "tensorflow"
    else:
        fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ModelError(
            f"{path}: unknown model format '{path.suffix}'; edgepack reads "
            + ", ".join(sorted(set(FORMATS))) + " files and TensorFlow SavedModel folders"
        )
    if fmt != "onnx":
        raise ModelError(
            f"{path}: importing {fmt} models is not supported yet; export the model to ONNX "
            "first and pass the .onnx file"
        )
    return fmt
