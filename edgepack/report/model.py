"""Typed records of one build. ``report.json`` is their ``to_dict``; keys are only ever added
within a schema version."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgepack.errors import UsageError

# 2: samples-axis data model, attempts with outcome + reason, requested/previous/build per cell
# 3: the speed record is a decision with its source; device estimates; the declined status
SCHEMA_VERSION = 3


@dataclass(frozen=True)
class Attempt:
    """One lowering strategy tried for a cell, and what came of it."""

    strategy: str
    outcome: str  # "accepted", "rejected" or "skipped"
    reason: str | None = None  # why it was rejected or skipped
    model: str = "prepared"  # which prepared model it lowered: prepared, standard, minimal
    seconds: float | None = None  # lowering time
    peak_rss_bytes: int | None = None  # of the lowering process
    stats: dict = field(default_factory=dict)  # what the converter reported
    accuracy: dict | None = None  # per output: the numbers this attempt's bundle reached
    speed: dict | None = None  # the speed decision against the fp32 bundle, and its source
    kept: str | None = None  # a rejected bundle kept for inspection (under failed/)
    device: dict | None = None  # its estimated latency on the profile's CPU (or why none)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Cell:
    """One (profile, target, precision) of the build matrix and everything measured for it."""

    profile: str
    target: str
    precision: str
    variant: str | None = None  # a target's variant of a precision (Target.variants)
    status: str = "pending"  # "ok", "failed", "skipped" or "declined" (accurate, not faster)
    reason: str | None = None
    requested: bool = False  # named by --target (a skip or failure then fails the build)
    accuracy: dict | None = None  # per output numbers, data kind, gates
    latency: dict | None = None  # ms: p50, p90, p99, mean, min, max, runs, threads, cold start
    speed: dict | None = None  # speedup over the fp32 bundle: the decision and its source
    device: dict | None = None  # estimated latency on the profile's CPU (or why there is none)
    emulated: dict | None = None  # --emulate: accuracy on the profile's CPU under qemu
    boards: list[dict] = field(default_factory=list)  # --remote: what each board measured
    memory: dict | None = None  # peak RSS bytes of the benchmark process
    size: int | None = None  # bytes of the model file(s)
    bundle: str | None = None
    archive: str | None = None
    archive_sha256: str | None = None
    runtime: dict | None = None  # what the runtime reported it configured
    attempts: list[Attempt] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    gates: list[dict] = field(default_factory=list)
    timings: dict = field(default_factory=dict)  # seconds per step (lower, verify, bench)
    log: str | None = None
    failed_bundles: str | None = None  # folder holding rejected attempts' bundles
    build: dict = field(default_factory=dict)  # when and where this cell was built
    previous: dict | None = None  # a failed cell: the earlier ok bundle still in the folder
    auto: bool = False  # built for --precision auto
    chosen: str | None = None  # --precision auto chose this cell: why
    optional: bool = False  # --precision auto chose another cell: this one cannot fail the build
    cached: dict | None = None  # restored from the build cache (--cache): when it was built

    @property
    def fails_build(self) -> bool:
        return not self.optional and (self.status == "failed" or (
            self.requested and self.status == "skipped"))

    @property
    def key(self) -> str:
        return f"{self.profile}/{self.name}"

    @property
    def name(self) -> str:
        """The bundle's folder name: target-precision[-variant]."""
        return "-".join(p for p in (self.target, self.precision, self.variant) if p)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Cell:
        """ValueError when ``d`` is not a cell record (an object with a list of attempts)."""
        attempts = _objects(_object(d, "a cell").get("attempts", []), "attempts")
        known = {f for f in cls.__dataclass_fields__}
        cell = cls(**{k: v for k, v in d.items() if k in known and k != "attempts"})
        cell.attempts = [Attempt(**{k: v for k, v in a.items()
                                    if k in Attempt.__dataclass_fields__})
                         for a in attempts]
        return cell


@dataclass
class Report:
    """Everything about the cells in one output folder: the last build's header, and every
    cell present (cells from earlier builds of the same model keep their own records)."""

    edgepack_version: str
    created: str
    source: dict
    host: dict
    tools: dict
    settings: dict
    data: dict = field(default_factory=dict)
    stages: list[dict] = field(default_factory=list)
    cells: list[Cell] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    @property
    def ok(self) -> bool:
        """No cell failed, no requested cell was skipped, and at least one cell is ok."""
        return not any(c.fails_build for c in self.cells) and any(
            c.status == "ok" for c in self.cells)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ok"] = self.ok
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Report:
        """ValueError when ``d`` is not a report (an object; its header tables objects, its
        cells a list of cell records)."""
        _object(d, "the report")
        for key in ("source", "host", "tools", "settings", "data"):
            _object(d.get(key, {}), f"'{key}'")
        known = {f for f in cls.__dataclass_fields__}
        report = cls(**{k: v for k, v in d.items() if k in known and k != "cells"})
        report.cells = [Cell.from_dict(c) for c in _objects(d.get("cells", []), "cells")]
        return report


def _object(value, what: str) -> dict:
    if not isinstance(value, dict):
        kind = {list: "an array", str: "a string", bool: "true/false", int: "a number",
                float: "a number", type(None): "null"}.get(type(value), type(value).__name__)
        raise ValueError(f"{what} is {kind}, not an object")
    return value


def _objects(value, what: str) -> list[dict]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ValueError(f"'{what}' is not a list of objects")
    return value


def host_info() -> dict:
    """The machine that measured the numbers (never presented as the device)."""
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        pass
    return {
        "hostname": platform.node(), "machine": platform.machine(),
        "cpu": cpu or platform.processor(),
        "cpus": os.cpu_count(), "memory_bytes": mem, "os": platform.platform(),
        "python": platform.python_version(),
    }


def model_folders(folder: Path) -> list[Path]:
    """``folder`` itself if it holds a report.json, else its subfolders that do."""
    if not folder.is_dir():
        raise UsageError(f"report merge: {folder} is not a folder; pass the output folders "
                         "(-o) of edgepack build --cell jobs")
    if (folder / "report.json").is_file():
        return [folder]
    found = sorted(p.parent for p in folder.glob("*/report.json"))
    if not found:
        raise UsageError(f"report merge: {folder} holds no report.json (nor do its subfolders); "
                         "pass the output folders (-o) of edgepack build --cell jobs")
    return found



def read_report(path: Path) -> Report:
    try:
        return Report.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise UsageError(f"{path} is not an edgepack report.json ({e})") from None


def report_file(path: Path) -> Path:
    """A report.json, or the one inside a model folder or an output folder."""
    if not path.is_dir():
        return path
    found = model_folders(path)
    if len(found) > 1:
        raise UsageError(f"{path} holds the reports of several models "
                         f"({', '.join(f.name for f in found)}); pass one model's folder")
    return found[0] / "report.json"
