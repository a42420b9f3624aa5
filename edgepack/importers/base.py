"""What an importer does: describe a source model, export it to ONNX, and run it in its own
framework (the reference every bundle is verified against).

Each method runs in a child process (``edgepack.tasks.ImportSpec``), so a framework that
crashes fails the import with a reason, and ``import edgepack`` loads no framework. An importer
whose framework lives in an isolated toolchain runs its worker there (see
``tensorflow.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgepack.artifact import TensorSpec
from edgepack.toolchains import Toolchain


@dataclass(frozen=True)
class Source:
    """A user's model in its own format."""

    path: Path  # the file or folder (an entry point's .py file)
    format: str  # see FORMATS in importers/__init__.py
    entry: str | None = None  # "make_model" of "file.py:make_model"
    weights: Path | None = None  # --weights FILE (torch state dict)
    trust_pickle: bool = False  # --trust-pickle: torch.load a whole pickled model

    @property
    def display(self) -> str:
        return f"{self.path}:{self.entry}" if self.entry else str(self.path)

    def to_dict(self) -> dict:
        return {"path": str(self.path), "format": self.format, "entry": self.entry,
                "weights": str(self.weights) if self.weights else None,
                "trust_pickle": self.trust_pickle}

    @classmethod
    def from_dict(cls, d: dict) -> Source:
        return cls(Path(d["path"]), d["format"], d.get("entry"),
                   Path(d["weights"]) if d.get("weights") else None,
                   bool(d.get("trust_pickle")))


@dataclass
class SourceIO:
    """A source model's inputs and outputs as its framework declares them (dims may be
    None where dynamic; shapes may be missing where the framework does not say)."""

    inputs: list[TensorSpec]
    outputs: list[str] = field(default_factory=list)
    layout: str | None = None  # "NHWC" for TensorFlow/TFLite image inputs
    notes: list[str] = field(default_factory=list)
    quantized: bool = False  # the source already computes in int8 (e.g. a quantized .tflite)


class Importer:
    """One source format family. Methods run in child processes."""

    format: str = ""
    framework: str = ""  # e.g. "torch 2.13.0" is filled in by describe
    extra: str | None = None  # edgepack's extra that installs the framework (main env)
    module: str | None = None  # whose presence means the framework is installed
    toolchain: Toolchain | None = None  # or: the isolated environment it runs in

    def missing(self) -> str | None:
        """Why this importer cannot run here (and how to fix it), or None."""
        import importlib.util

        if self.module and importlib.util.find_spec(self.module) is None:
            return (f"importing {self.format} models needs {self.module}, which is not "
                    f"installed; install it with: pip install 'edgepack[{self.extra}]'")
        if self.toolchain is not None and not self.toolchain.installed():
            return (f"importing {self.format} models needs the {self.toolchain.name} toolchain, "
                    f"which is not installed; run: edgepack toolchain install "
                    f"{self.toolchain.purpose}")
        return None

    def check(self, source: Source) -> None:
        """ModelError for a source that cannot be what it says (cheap, in the parent)."""

    def describe(self, source: Source, workdir: Path, timeout: float) -> SourceIO:
        raise NotImplementedError

    def export(self, source: Source, inputs: list[TensorSpec], outputs: list[str], dst: Path,
               workdir: Path, timeout: float) -> dict:
        """Write the ONNX model to ``dst`` with the source's input and output names; return a
        record (exporter used, why another failed)."""
        raise NotImplementedError

    def run(self, source: Source, inputs: list[TensorSpec], outputs: list[str], data: Path,
            out: Path, workdir: Path, timeout: float) -> dict:
        """Run the source model in its framework on every sample of ``data`` (an exchange
        .npz) and save the outputs packed (device.core.pack) to ``out``."""
        raise NotImplementedError


def unique_names(names: list[str]) -> list[str]:
    """``names`` with repeats made unique: the second ``y`` becomes ``y_1`` (two outputs of a
    model may be one tensor)."""
    used: set[str] = set()
    out = []
    for name in names:
        candidate, k = name, 0
        while candidate in used:
            k += 1
            candidate = f"{name}_{k}"
        used.add(candidate)
        out.append(candidate)
    return out
