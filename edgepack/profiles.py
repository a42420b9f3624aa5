"""Device profiles: a device described as data, loaded from a TOML file.

The profiles edgepack ships live in the top-level ``targets/`` folder of the source tree and
inside the wheel as ``edgepack/_profiles``. ``--profile`` takes one of their names or a path
to the user's own TOML file. Unknown keys are errors, so a typo never passes silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from edgepack import settings
from edgepack.errors import ProfileError
from edgepack.settings import PRECISIONS, Precision


@dataclass(frozen=True)
class AccuracyBudget:
    """What a bundle of one precision must meet against the FP32 reference.

    ``min_cosine``: cosine similarity per output, over all evaluated samples.
    ``max_rel_error``: max abs error divided by the reference's max abs value, per output.
    ``max_top1_drop``: reference top-1 accuracy minus the bundle's, in percentage points
    (classifiers with labels only).
    ``min_top1_agreement``: fraction of samples whose top-1 class matches the reference's
    (classifiers only; for "sequence" outputs, of the steps whose top-1 class matches).
    ``min_map_iou``: IoU of the thresholded maps ("map" outputs, see device.core).
    ``max_floor_rel_error``: mean relative error of the values above the floor ("map" and
    "sequence" outputs, instead of ``max_rel_error``).
    """

    min_cosine: float
    max_rel_error: float
    max_top1_drop: float
    min_top1_agreement: float
    min_map_iou: float = 0.999
    max_floor_rel_error: float = 1e-3


# the speed gate: fp32 p50 / this precision's p50 must reach this (None: not compared)
DEFAULT_MIN_SPEEDUP: dict[str, float | None] = {
    "fp32": None, "fp16": 0.0, "int8-dynamic": 1.0, "int8": 1.0,
    "int4-weights": 0.0}  # weight-only int4 is for size and memory: its speed is reported

DEFAULT_BUDGETS: dict[str, AccuracyBudget] = {
    "fp32": AccuracyBudget(0.9999, 1e-3, 0.0, 0.999, 0.999, 1e-3),
    "fp16": AccuracyBudget(0.999, 0.02, 0.5, 0.99, 0.99, 0.02),
    "int8-dynamic": AccuracyBudget(0.98, 0.25, 1.0, 0.95, 0.9, 0.1),
    "int8": AccuracyBudget(0.98, 0.25, 1.0, 0.95, 0.9, 0.1),
    "int4-weights": AccuracyBudget(0.99, 0.5, 2.0, 0.9, 0.85, 0.15),
}


@dataclass(frozen=True)
class DeviceProfile:
    """A deployment device: hardware, OS/Python it runs, runtimes, defaults and budgets."""

    name: str
    description: str
    arch: str  # "aarch64" or "x86_64"
    cpu: str
    cores: int
    memory_mb: int
    threads: int
    os: str
    python: str  # the device's CPython, "3.11"
    glibc: str  # the device's glibc, "2.36"; decides which wheels can install
    runtimes: tuple[str, ...]
    default_precisions: tuple[str, ...]
    budgets: dict[str, AccuracyBudget] = field(default_factory=dict)
    speedups: dict[str, float] = field(default_factory=dict)  # [speed.<precision>]
    source: str = ""  # where it was loaded from
    clock_ghz: float | None = None  # the CPU's clock on this device (device estimates)
    features: tuple[str, ...] = ()  # CPU features the device has (/proc/cpuinfo "Features")
    # [accuracy.outputs]: how named outputs are compared (device.core.OUTPUT_KINDS), where
    # detecting it from the output's shape and values is not wanted
    output_kinds: dict[str, str] = field(default_factory=dict)

    def budget(self, precision: str) -> AccuracyBudget:
        return self.budgets.get(precision, DEFAULT_BUDGETS[precision])

    def min_speedup(self, precision: str) -> float | None:
        """The speed gate of ``precision`` against fp32 (None for fp32 itself)."""
        if precision == Precision.FP32:
            return None
        return self.speedups.get(precision, DEFAULT_MIN_SPEEDUP[precision])

    def glibc_at_least(self, version: str) -> bool:
        def as_tuple(v: str) -> tuple[int, ...]:
            return tuple(int(p) for p in v.split("."))

        return as_tuple(self.glibc) >= as_tuple(version)

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)
               if f.name not in ("budgets", "speedups", "output_kinds")}
        out["runtimes"] = list(self.runtimes)
        out["features"] = list(self.features)
        out["default_precisions"] = list(self.default_precisions)
        out["budgets"] = {p: vars(self.budget(p)) for p in PRECISIONS}
        out["min_speedup"] = {p: self.min_speedup(p) for p in PRECISIONS}
        out["output_kinds"] = dict(self.output_kinds)
        return out


_REQUIRED = {
    "name": str, "description": str, "arch": str, "cpu": str, "cores": int, "memory_mb": int,
    "threads": int, "os": str, "python": str, "glibc": str, "runtimes": list,
    "default_precisions": list,
}
_OPTIONAL = {"clock_ghz": (int, float), "features": list}
_TABLES = ("accuracy", "speed")
_TYPE_WORDS = {str: "a string", int: "an integer", list: "a list", (int, float): "a number"}


def profiles_dir() -> Path:
    """The folder of shipped profiles: inside the wheel, or ``targets/`` in a source tree."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_profiles", here.parent / "targets"):
        if candidate.is_dir():
            return candidate
    raise ProfileError(f"edgepack's profile folder is missing (looked in {here / '_profiles'})")


def list_profiles() -> list[DeviceProfile]:
    """Every shipped profile, sorted by name."""
    return [load_profile(p) for p in sorted(profiles_dir().glob("*.toml"))]


def load_profile(name_or_path: str | Path) -> DeviceProfile:
    """Load a shipped profile by name, or a TOML file by path.

    Raises ProfileError for an unknown name, an unreadable file, or invalid contents.
    """
    text = str(name_or_path)
    path = Path(text)
    if not (text.endswith(".toml") or path.is_file()):
        path = profiles_dir() / f"{text}.toml"
        if not path.is_file():
            known = ", ".join(p.stem for p in sorted(profiles_dir().glob("*.toml")))
            raise ProfileError(
                f"unknown profile '{text}'; known profiles: {known} "
                "(or pass a path to a .toml file)"
            )
    return _parse(settings.read_toml(path, "profile", ProfileError), str(path))


def _parse(data: dict, source: str) -> DeviceProfile:
    where = f"profile {source}"
    known = [*_REQUIRED, *_OPTIONAL, *_TABLES]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ProfileError(f"{where}: unknown key(s) {', '.join(unknown)}; known: "
                           f"{', '.join(known)}")
    for key, typ in {**_REQUIRED, **_OPTIONAL}.items():
        if key not in data:
            if key in _OPTIONAL:
                continue
            raise ProfileError(f"{where}: missing required key '{key}'")
        if not isinstance(data[key], typ) or isinstance(data[key], bool):
            raise ProfileError(f"{where}: '{key}' must be {_TYPE_WORDS[typ]}, got {data[key]!r}")
    settings.check("arch", data["arch"], f"{where}: 'arch'", ProfileError)
    for key in ("cores", "threads", "memory_mb"):
        settings.check(key, data[key], f"{where}: '{key}'", ProfileError)
    for key in ("python", "glibc"):
        settings.check_version(data[key], f"{where}: '{key}'", ProfileError)
    for item in data["default_precisions"]:
        if item == settings.AUTO:
            raise ProfileError(f"{where}: 'default_precisions' cannot hold 'auto' (a build "
                               "option); list the precisions")
        settings.check("precision", item, f"{where}: 'default_precisions'", ProfileError)
    _check_runtimes(data["runtimes"], where)
    if "clock_ghz" in data:
        settings.check("clock_ghz", data["clock_ghz"], f"{where}: 'clock_ghz'", ProfileError)
    features = data.get("features", [])
    if not all(isinstance(f, str) and f and f == f.strip() and " " not in f for f in features):
        raise ProfileError(f"{where}: 'features' must be a list of CPU feature names as "
                           "/proc/cpuinfo lists them (e.g. \"asimddp\")")
    values = {k: data[k] for k in _REQUIRED}
    values["runtimes"] = tuple(data["runtimes"])
    values["default_precisions"] = tuple(data["default_precisions"])
    accuracy = dict(data["accuracy"]) if isinstance(data.get("accuracy"), dict) else \
        data.get("accuracy", {})
    kinds = _parse_kinds(accuracy.pop("outputs", {}) if isinstance(accuracy, dict) else {},
                         where)
    return DeviceProfile(**values, budgets=_parse_budgets(accuracy, where),
                         speedups=_parse_speed(data.get("speed", {}), where), source=source,
                         clock_ghz=float(data["clock_ghz"]) if "clock_ghz" in data else None,
                         features=tuple(features), output_kinds=kinds)


def _parse_speed(table: dict, where: str) -> dict[str, float]:
    speedups = {}
    if not isinstance(table, dict):
        raise ProfileError(f"{where}: 'speed' must be a table of [speed.<precision>]")
    for precision, values in table.items():
        if precision not in PRECISIONS or precision == Precision.FP32:
            raise ProfileError(f"{where}: [speed.{precision}] is not a precision compared with "
                               f"fp32; use one of {', '.join(PRECISIONS[1:])}")
        if not isinstance(values, dict) or set(values) - {"min_speedup"}:
            raise ProfileError(f"{where}: [speed.{precision}] takes only min_speedup")
        if "min_speedup" in values:
            speedups[precision] = settings.check(
                "min_speedup", values["min_speedup"],
                f"{where}: speed.{precision}.min_speedup", ProfileError)
    return speedups


def _check_runtimes(runtimes: list, where: str) -> None:
    from edgepack.registry import target_names  # the targets found (none imported)

    known = target_names()
    for name in runtimes:
        if name not in known:
            raise ProfileError(f"{where}: 'runtimes' lists {name!r}, which is not a target; "
                               f"known targets: {', '.join(known)}")
    if not runtimes:
        raise ProfileError(f"{where}: 'runtimes' is empty; list at least one of "
                           f"{', '.join(known)}")


def _parse_kinds(table: dict, where: str) -> dict[str, str]:
    """[accuracy.outputs]: output name = how it is compared."""
    if not isinstance(table, dict):
        raise ProfileError(f"{where}: [accuracy.outputs] must be a table of output name = kind")
    return {name: settings.check("output_kind", kind, f"{where}: accuracy.outputs.{name}",
                                 ProfileError) for name, kind in table.items()}


def _parse_budgets(table: dict, where: str) -> dict[str, AccuracyBudget]:
    budgets = {}
    names = [f.name for f in fields(AccuracyBudget)]
    if not isinstance(table, dict):
        raise ProfileError(f"{where}: 'accuracy' must be a table of [accuracy.<precision>]")
    for precision, values in table.items():
        if precision not in PRECISIONS:
            raise ProfileError(f"{where}: [accuracy.{precision}] is not a precision; known: "
                               f"{', '.join(PRECISIONS)} (or [accuracy.outputs])")
        if not isinstance(values, dict):
            raise ProfileError(f"{where}: [accuracy.{precision}] must be a table")
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ProfileError(f"{where}: unknown key(s) in [accuracy.{precision}]: "
                               f"{', '.join(unknown)}; known: {', '.join(names)}")
        checked = {k: settings.check(k, v, f"{where}: accuracy.{precision}.{k}", ProfileError)
                   for k, v in values.items()}
        budgets[precision] = replace(DEFAULT_BUDGETS[precision], **checked)
    return budgets
