"""What every target provides: a lowering into bundle files and a Runner for them."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgepack.artifact import TensorSpec
from edgepack.data import Dataset
from edgepack.device.runner import BACKENDS, Backend
from edgepack.errors import EdgepackError, MissingExtraError
from edgepack.profiles import DeviceProfile


@dataclass(frozen=True)
class LowerOptions:
    """Settings for one lowering, from the command line (None means the target's default)."""

    calibration_method: str = "minmax"  # minmax, entropy, percentile (static int8)
    timeout: float = 600.0  # seconds for one lowering child process
    variant: str | None = None  # a target-specific variant of a precision (see Target.variants)
    strategy: str = "default"  # which of Target.strategies to use
    cache_dir: str | None = None  # shared by the cells of one build (e.g. converter outputs)
    log: str | None = None  # the cell's log file, for converter output
    int8_io: bool = False  # tflite: full-integer int8 inputs/outputs for the int8 precision
    preset: str | None = None  # openvino int8: nncf preset "performance" or "mixed" (None: auto)


@dataclass
class Lowered:
    """What a lowering wrote: the model file, extra files, and its I/O as the runtime sees it."""

    model_file: str  # relative to the bundle directory
    files: list[str]  # every file the lowering wrote, model file included
    inputs: list[dict]  # TensorSpec dicts + "onnx_name" and "quantization" per tensor
    outputs: list[dict]
    runtime_options: dict = field(default_factory=dict)  # passed to the device Backend
    notes: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)  # recorded with the attempt (converter, times)


class Runner:
    """Loads one bundle's model and runs it; a context manager.

    The public methods check state and inputs; the runtime work is the device Backend's,
    the very code that ships in the bundle's ``run.py``. Timing lives in the shared harness.
    """

    backend_name: str = ""

    def __init__(self, model_path: Path, inputs: list[TensorSpec], threads: int,
                 options: dict | None = None) -> None:
        self.inputs = inputs
        self.backend: Backend = BACKENDS[self.backend_name](model_path, threads, options or {})
        self.loaded = False

    def load(self) -> Runner:
        self.backend.load()
        self.loaded = True
        return self

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self.loaded:
            raise RuntimeError("Runner.infer called before load()")
        for spec in self.inputs:
            arr = feeds.get(spec.name)
            if arr is None:
                raise EdgepackError(f"no value fed for input '{spec.name}'")
            if arr.dtype != np.dtype(spec.dtype) or tuple(arr.shape) != tuple(spec.shape):
                raise EdgepackError(
                    f"input '{spec.name}' got {arr.dtype}{list(arr.shape)}, the model expects "
                    f"{spec.dtype}{spec.shape_str()}"
                )
        return self.backend.run(feeds)

    def close(self) -> None:
        if self.loaded:
            self.backend.close()
            self.loaded = False

    def __enter__(self) -> Runner:
        return self.load()

    def __exit__(self, *exc) -> None:
        self.close()


class Target:
    """A deployment runtime. Subclasses set the class attributes and implement ``lower``."""

    name: str = ""
    package: str = ""  # the pip package of the runtime
    module: str = ""  # the module to import
    extra: str = ""  # edgepack's extra that installs it
    runner: type[Runner] = Runner
    precisions: tuple[str, ...] = ("fp32", "fp16", "int8-dynamic", "int8")

    def available(self) -> bool:
        try:
            return importlib.util.find_spec(self.module) is not None
        except (ImportError, ValueError):
            return False

    def require(self) -> None:
        """MissingExtraError naming the extra when the runtime is not installed."""
        if not self.available():
            raise MissingExtraError(self.package, self.extra, f"the '{self.name}' target")

    def runtime_version(self) -> str:
        return importlib.metadata.version(self.package)

    def missing_toolchain(self) -> str | None:
        """Why this target's converter cannot run here (and how to fix it), or None."""
        return None

    def check_profile(self, profile: DeviceProfile) -> str | None:
        """Why ``profile`` cannot run this target, or None when it can."""
        if self.name not in profile.runtimes:
            return (f"profile '{profile.name}' does not list the '{self.name}' runtime "
                    f"(it lists: {', '.join(profile.runtimes)})")
        return None

    def requirements(self, profile: DeviceProfile) -> list[str]:
        """Pinned device requirements: the runtime verified on the host, and numpy."""
        return [f"{self.package}=={self.runtime_version()}",
                f"numpy=={importlib.metadata.version('numpy')}"]

    def strategies(self, precision: str, profile: DeviceProfile) -> list[tuple[str, str | None]]:
        """(strategy name, why it is unavailable or None), in the order to try them."""
        return [("default", None)]

    def variants(self, precision: str, profile: DeviceProfile) -> list[str | None]:
        """The bundles one precision yields on this profile: None is the plain one."""
        return [None]

    def lower(self, model: Path, precision: str, profile: DeviceProfile,
              calib: Dataset | None, out_dir: Path, options: LowerOptions) -> Lowered:
        raise NotImplementedError
