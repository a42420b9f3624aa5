"""Typed records of one build. ``report.json`` is their ``to_dict``; keys are only ever added
within a schema version."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass, field

# 2: samples-axis data model, attempts with outcome + reason, requested/previous/build per cell
SCHEMA_VERSION = 2


@dataclass
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
    speed: dict | None = None  # against the fp32 bundle, timed interleaved
    kept: str | None = None  # a rejected bundle kept for inspection (under failed/)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Cell:
    """One (profile, target, precision) of the build matrix and everything measured for it."""

    profile: str
    target: str
    precision: str
    variant: str | None = None  # e.g. openvino's "device-default" inference precision
    status: str = "pending"  # "ok", "failed" or "skipped"
    reason: str | None = None
    requested: bool = False  # named by --target (a skip or failure then fails the build)
    accuracy: dict | None = None  # per output numbers, data kind, gates
    latency: dict | None = None  # ms: p50, p90, p99, mean, min, max, runs, threads, cold start
    speed: dict | None = None  # speedup over the fp32 bundle, timed interleaved
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
        known = {f for f in cls.__dataclass_fields__}
        cell = cls(**{k: v for k, v in d.items() if k in known and k != "attempts"})
        cell.attempts = [Attempt(**{k: v for k, v in a.items()
                                    if k in Attempt.__dataclass_fields__})
                         for a in d.get("attempts", [])]
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
        known = {f for f in cls.__dataclass_fields__}
        report = cls(**{k: v for k, v in d.items() if k in known and k != "cells"})
        report.cells = [Cell.from_dict(c) for c in d.get("cells", [])]
        return report


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
