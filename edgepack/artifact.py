"""ModelArtifact and TensorSpec: what a model file on disk is, as plain immutable data."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

Dim = int | str  # a fixed size, or the name of a symbolic dimension


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output. ``shape`` holds ints, or strings for symbolic dims."""

    name: str
    dtype: str  # numpy dtype name: "float32", "int64", ...
    shape: tuple[Dim, ...]
    layout: str | None = None  # "NCHW", "NHWC" or None when not an image tensor

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) and d > 0 for d in self.shape)

    @property
    def dynamic_dims(self) -> list[int]:
        return [i for i, d in enumerate(self.shape) if not (isinstance(d, int) and d > 0)]

    def shape_str(self) -> str:
        return "[" + ", ".join(str(d) for d in self.shape) + "]"

    def to_dict(self) -> dict:
        return {**asdict(self), "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, d: dict) -> TensorSpec:
        return cls(d["name"], d["dtype"], tuple(d["shape"]), d.get("layout"))


@dataclass(frozen=True)
class ModelArtifact:
    """One model file: where it is, what format, its I/O, its hash and where it came from."""

    path: Path
    format: str  # "onnx", "ort", "openvino", "tflite"
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    sha256: str
    produced_by: str = "user"  # the stage that wrote it
    parent_sha256: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def input(self, name: str) -> TensorSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(name)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_folder(path: Path) -> str:
    """Hex sha256 over a folder's files: each one's path (relative, POSIX) and sha256, sorted;
    hidden files and folders left out."""
    h = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path).as_posix()
        if not any(part.startswith(".") for part in rel.split("/")):
            h.update(f"{rel}\0{sha256_file(file)}\n".encode())
    return h.hexdigest()


def guess_layout(shape: tuple[Dim, ...]) -> str | None:
    """NCHW for 4-D tensors whose dim 1 looks like channels (1, 3 or 4), else None."""
    if len(shape) == 4 and shape[1] in (1, 3, 4):
        return "NCHW"
    if len(shape) == 4 and shape[3] in (1, 3, 4):
        return "NHWC"
    return None
