"""What every target declares and provides.

A target is a plugin (see :mod:`edgepack.targets`): its module defines ``TARGET``, an instance
of a :class:`Target` subclass that declares everything about the runtime — name, packages
(reported with each build), precisions, lowering strategies, its own options and their flags,
its device backend (the file shipped in each bundle as ``backend.py``) and its converter
toolchains — and implements ``lower``. The core never names a target.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from edgepack.data import Dataset
from edgepack.errors import MissingExtraError, UsageError
from edgepack.profiles import DeviceProfile
from edgepack.settings import COMMON_PRECISIONS
from edgepack.toolchains import Toolchain


@dataclass(frozen=True)
class TargetOption:
    """A setting only this target understands, with its command-line flag."""

    name: str  # key in LowerContext.options, e.g. "int8_io"
    flag: str  # e.g. "--int8-io"
    help: str
    type: type = bool  # bool (a switch), str, int or float
    choices: tuple[str, ...] = ()
    default: object = None

    def check(self, value):
        if value is not None and self.choices and value not in self.choices:
            raise UsageError(f"{self.flag}: {value!r} is not valid; it must be one of "
                             f"{', '.join(self.choices)}")
        return value


@dataclass(frozen=True)
class Strategy:
    """One way to lower a precision, tried in order; ``unavailable`` says why it cannot run.

    It crosses into the lowering process whole (``to_dict``/``from_dict``): a target reads its
    typed parameters, never its name. A target whose strategies need more parameters
    subclasses it and sets ``Target.strategy_type``."""

    name: str
    unavailable: str | None = None
    # graph rewrites (edgepack.stages.rewrites) applied to the model before this strategy
    # lowers it; a strategy whose rewrites change nothing is not tried
    rewrites: tuple[str, ...] = ()
    # graph rewrites into the forms this strategy's converter lowers, applied after the
    # ``rewrites``, each wherever it changes the model (none of them is a reason to try the
    # strategy or not); verification checks the result like any lowering
    forms: tuple[str, ...] = ()
    # a native path: it lowers the user's source model (LowerContext.source) instead of the
    # ONNX one, and is tried only for these source formats
    source_formats: tuple[str, ...] = ()
    toolchain: str | None = None  # the converter environment it runs (Target.toolchains)
    op_types: tuple[str, ...] | None = None  # quantize only these op types (None: every op)
    accuracy_control: bool = False  # return layers to float until the accuracy budget holds
    # weight-only quantization: this share of the weights, those it harms most (largest
    # relative quantization error, no data needed), kept at a higher precision
    keep_share: float = 0.0
    # strategies that share this run the same kernels (they differ in accuracy, not speed):
    # once one of them is accurate but not faster, the others are not tried
    kernels: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Strategy:
        known = {f.name: f for f in fields(cls)}
        values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()
                  if k in known}
        return cls(**values)

    def with_rewrite(self, rewrite: str) -> Strategy:
        """The same strategy on the model after ``rewrite``."""
        return replace(self, name=f"{self.name} +{rewrite}",
                       rewrites=(*self.rewrites, rewrite))


@dataclass(frozen=True)
class LowerContext:
    """Everything one lowering gets besides the model, precision, profile and calibration."""

    strategy: Strategy = Strategy("default")
    variant: str | None = None  # a target-specific variant of a precision (Target.variants)
    calibration_method: str = "minmax"  # static int8: minmax, entropy, percentile
    timeout: float = 900.0  # seconds for a converter process started by the lowering
    cache_dir: str | None = None  # shared by the cells of one build (converter outputs)
    log: str | None = None  # the cell's log, for converter output
    options: dict = field(default_factory=dict)  # this target's TargetOption values
    # the per-output tolerance the cell is verified with (min_cosine, max_rel_error,
    # min_match), for strategies that search for a quantization that meets it
    tolerance: dict = field(default_factory=dict)
    # for native strategies: the source model (importers.base.Source as a dict) with its
    # static "inputs" and "outputs", and "native" files converters can read (e.g. a
    # SavedModel with static shapes)
    source: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, strategy_type: type[Strategy] = Strategy) -> LowerContext:
        return cls(**{**d, "strategy": strategy_type.from_dict(d["strategy"])})


@dataclass
class Lowered:
    """What a lowering wrote: the model file, extra files, and its I/O as the runtime sees it."""

    model_file: str  # relative to the bundle directory
    files: list[str]  # every file the lowering wrote, model file included
    inputs: list[dict]  # TensorSpec dicts (+ runtime names, transposes, quantization)
    outputs: list[dict]
    runtime_options: dict = field(default_factory=dict)  # passed to the device backend
    notes: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)  # recorded with the attempt (converter, times)


class Target:
    """A deployment runtime. Subclasses set the class attributes and implement ``lower``."""

    name: str = ""
    packages: tuple[str, ...] = ()  # pip packages reported in every build; the first is the
    #                                 runtime pinned in each bundle's requirements.txt
    module: str = ""  # the module whose presence means the runtime is installed
    extra: str = ""  # edgepack's extra that installs it
    runtime: str = ""  # the runtime's name in manifests and messages
    backend: str = ""  # module path of the device backend (stdlib + numpy + runtime only)
    precisions: tuple[str, ...] = COMMON_PRECISIONS
    options: tuple[TargetOption, ...] = ()
    toolchains: tuple[Toolchain, ...] = ()
    strategy_type: type[Strategy] = Strategy  # what its strategies are, rebuilt in the child
    standard_ops_only: bool = True  # False: it also runs vendor-domain ops (com.microsoft...)

    def available(self) -> bool:
        try:
            return importlib.util.find_spec(self.module) is not None
        except (ImportError, ValueError):
            return False

    def require(self) -> None:
        """MissingExtraError naming the extra when the runtime is not installed."""
        if not self.available():
            raise MissingExtraError(self.packages[0], self.extra, f"the '{self.name}' target")

    def runtime_version(self) -> str:
        return importlib.metadata.version(self.packages[0])

    def backend_file(self) -> Path:
        """The device backend's source file (copied into bundles as backend.py)."""
        return Path(importlib.util.find_spec(self.backend).origin)

    def missing_toolchain(self) -> str | None:
        """Why this target's converter cannot run here (and how to fix it), or None."""
        if self.toolchains and not any(chain.installed() for chain in self.toolchains):
            return (f"the {self.name} target needs its converter toolchain, which is not "
                    f"installed; run: edgepack toolchain install {self.name}")
        return None

    def check_profile(self, profile: DeviceProfile) -> str | None:
        """Why ``profile`` cannot run this target, or None when it can."""
        if self.name not in profile.runtimes:
            return (f"profile '{profile.name}' does not list the '{self.name}' runtime "
                    f"(it lists: {', '.join(profile.runtimes)})")
        return None

    def requirements(self, profile: DeviceProfile) -> list[str]:
        """Pinned device requirements: the runtime verified on the host, and numpy."""
        return [f"{self.packages[0]}=={self.runtime_version()}",
                f"numpy=={importlib.metadata.version('numpy')}"]

    def strategies(self, precision: str, profile: DeviceProfile) -> list[Strategy]:
        """The strategies to try for ``precision``, in order."""
        return [Strategy("default")]

    def declines(self, precision: str, profile: DeviceProfile) -> str | None:
        """Why this target builds no ``precision`` bundle (one line: what is missing, e.g. a
        quantizer that no package registry ships), or None. A declined precision is a skipped
        cell with this reason, also when asked for by name; any other precision outside
        ``precisions`` is a usage error when asked for."""
        return None

    def variants(self, precision: str, profile: DeviceProfile) -> list[str | None]:
        """The bundles one precision yields on this profile: None is the plain one."""
        return [None]

    def lower(self, model: Path, precision: str, profile: DeviceProfile,
              calib: Dataset | None, out_dir: Path, ctx: LowerContext) -> Lowered:
        """Write the bundle's model file(s) for ``precision`` into ``out_dir``.

        Raises DataError/ModelError for what the user can fix; anything else fails only
        this attempt (it runs in a child process)."""
        raise NotImplementedError
