"""Typed records of one build. ``report.json`` is their ``to_dict``; keys are only ever added
within a schema version."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Literal

from edgepack.errors import UsageError
from edgepack.gates import Gate
from edgepack.report.records import (
    BoardRun,
    Cached,
    DeviceEstimate,
    Emulated,
    Latency,
    Memory,
    Previous,
)
from edgepack.settings import Precision
from edgepack.speed import Decision

# 2: samples-axis data model, attempts with outcome + reason, requested/previous/build per cell
# 3: the speed record is a decision with its source; device estimates; the declined status
SCHEMA_VERSION = 3


class Status(StrEnum):
    """What became of a cell of the matrix."""

    PENDING = "pending"  # planned, not built yet
    OK = "ok"  # shipped: a bundle verified within budget (and every gate held)
    FAILED = "failed"
    SKIPPED = "skipped"  # not built (a target or precision this build cannot make)
    DECLINED = "declined"  # accurate, but not shown faster than fp32


Outcome = Literal["accepted", "rejected", "skipped"]


def _decision(d: dict | None) -> Decision | None:
    return Decision.from_json(d) if d else None


def _device(d: dict | None) -> DeviceEstimate | None:
    return DeviceEstimate.from_json(d) if d else None


@dataclass(frozen=True)
class Attempt:
    """One lowering strategy tried for a cell, and what came of it."""

    strategy: str
    outcome: Outcome
    reason: str | None = None  # why it was rejected or skipped
    model: str = "prepared"  # which prepared model it lowered: prepared, standard, minimal
    seconds: float | None = None  # lowering time
    peak_rss_bytes: int | None = None  # of the lowering process
    stats: dict = field(default_factory=dict)  # what the converter reported
    accuracy: dict | None = None  # per output: the numbers this attempt's bundle reached
    speed: Decision | None = None  # the speed decision against the fp32 bundle
    kept: str | None = None  # a rejected bundle kept for inspection (under failed/)
    device: DeviceEstimate | None = None  # its estimated latency on the profile's CPU

    def to_json(self) -> dict:
        return {"strategy": self.strategy, "outcome": self.outcome, "reason": self.reason,
                "model": self.model, "seconds": self.seconds,
                "peak_rss_bytes": self.peak_rss_bytes, "stats": self.stats,
                "accuracy": self.accuracy,
                "speed": self.speed.to_json() if self.speed else None, "kept": self.kept,
                "device": self.device.to_json() if self.device else None}

    @classmethod
    def from_json(cls, d: dict) -> Attempt:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**{**known, "stats": dict(known.get("stats") or {}),
                      "speed": _decision(known.get("speed")),
                      "device": _device(known.get("device"))})


# the records' fields and how each turns into JSON and back (the rest are plain values)
_RECORDS = {"latency": Latency, "memory": Memory, "speed": Decision, "device": DeviceEstimate,
            "emulated": Emulated, "previous": Previous, "cached": Cached}
_SEQUENCES = {"boards": BoardRun, "gates": Gate, "attempts": Attempt}


@dataclass(frozen=True)
class Cell:
    """One (profile, target, precision) of the build matrix and everything measured for it.

    Frozen: each step of a build returns a new cell (``dataclasses.replace``); who makes
    cells is listed in docs/ARCHITECTURE.md ("One writer per record")."""

    profile: str
    target: str
    precision: Precision
    variant: str | None = None  # a target's variant of a precision (Target.variants)
    status: Status = Status.PENDING
    reason: str | None = None
    requested: bool = False  # named by --target (a skip or failure then fails the build)
    accuracy: dict | None = None  # per output numbers, data kind, budget
    latency: Latency | None = None  # measured on the build host
    speed: Decision | None = None  # speedup over the fp32 bundle: the decision and its source
    device: DeviceEstimate | None = None  # estimated latency on the profile's CPU (or why not)
    emulated: Emulated | None = None  # --emulate: accuracy on the profile's CPU under qemu
    boards: tuple[BoardRun, ...] = ()  # --remote: what each board measured
    memory: Memory | None = None  # of the benchmark process
    size: int | None = None  # bytes of the model file(s)
    bundle: str | None = None
    archive: str | None = None
    archive_sha256: str | None = None
    runtime: dict | None = None  # what the runtime reported it configured
    attempts: tuple[Attempt, ...] = ()
    notes: tuple[str, ...] = ()
    gates: tuple[Gate, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step
    log: str | None = None
    failed_bundles: str | None = None  # folder holding rejected attempts' bundles
    build: dict[str, str] = field(default_factory=dict)  # when and where this cell was built
    previous: Previous | None = None  # a failed cell: the earlier ok bundle still there
    auto: bool = False  # built for --precision auto
    chosen: str | None = None  # --precision auto chose this cell: why
    optional: bool = False  # --precision auto chose another cell: this one cannot fail the build
    cached: Cached | None = None  # restored from the build cache (--cache): when it was built

    @property
    def fails_build(self) -> bool:
        return not self.optional and (self.status == Status.FAILED or (
            self.requested and self.status == Status.SKIPPED))

    @property
    def key(self) -> str:
        return f"{self.profile}/{self.name}"

    @property
    def name(self) -> str:
        """The bundle's folder name: target-precision[-variant]."""
        return "-".join(p for p in (self.target, self.precision, self.variant) if p)

    def noted(self, *notes: str) -> Cell:
        """This cell with ``notes`` added."""
        return replace(self, notes=(*self.notes, *notes))

    def to_json(self) -> dict:
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _RECORDS:
                value = value.to_json() if value is not None else None
            elif f.name in _SEQUENCES:
                value = [v.to_json() for v in value]
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, StrEnum):
                value = str(value)
            out[f.name] = value
        return out

    @classmethod
    def from_json(cls, d: dict) -> Cell:
        """ValueError when ``d`` is not a cell record (an object with a list of attempts)."""
        _object(d, "a cell")
        values = {}
        for name in cls.__dataclass_fields__:
            if name not in d:
                continue
            value = d[name]
            if name in _RECORDS:
                value = _RECORDS[name].from_json(_object(value, name)) if value else None
            elif name in _SEQUENCES:
                value = tuple(_SEQUENCES[name].from_json(v) for v in _objects(value, name))
            elif name == "notes":
                value = tuple(value)
            values[name] = value
        values["precision"] = Precision(values["precision"])
        values["status"] = Status(values.get("status", Status.PENDING))
        return cls(**values)


@dataclass(frozen=True)
class Report:
    """Everything about the cells in one output folder: the last build's header, and every
    cell present (cells from earlier builds of the same model keep their own records).
    Frozen like its cells: the build makes it, publishing returns the merged one."""

    edgepack_version: str
    created: str
    source: dict
    host: dict
    tools: dict
    settings: dict
    data: dict = field(default_factory=dict)
    stages: tuple[dict, ...] = ()
    cells: tuple[Cell, ...] = ()
    notes: tuple[str, ...] = ()
    schema_version: int = SCHEMA_VERSION

    @property
    def ok(self) -> bool:
        """No cell failed, no requested cell was skipped, and at least one cell is ok."""
        return not any(c.fails_build for c in self.cells) and any(
            c.status == Status.OK for c in self.cells)

    def to_json(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["cells"] = [c.to_json() for c in self.cells]
        d["notes"], d["stages"] = list(self.notes), list(self.stages)
        d["ok"] = self.ok
        return d

    @classmethod
    def from_json(cls, d: dict) -> Report:
        """ValueError when ``d`` is not a report (an object; its header tables objects, its
        cells a list of cell records)."""
        _object(d, "the report")
        for key in ("source", "host", "tools", "settings", "data"):
            _object(d.get(key, {}), f"'{key}'")
        known = {f for f in cls.__dataclass_fields__}
        cells = tuple(Cell.from_json(c) for c in _objects(d.get("cells", []), "cells"))
        values = {k: v for k, v in d.items() if k in known and k != "cells"}
        values.update(stages=tuple(values.get("stages", ())),
                      notes=tuple(values.get("notes", ())))
        return cls(**values, cells=cells)


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
        return Report.from_json(json.loads(path.read_text()))
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
