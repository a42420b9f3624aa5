"""Typed records of one build. ``report.json`` is their ``to_dict``; keys are only ever added."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass, field

SCHEMA_VERSION = 1


@dataclass
class Cell:
    """One (profile, target, precision) of the build matrix and everything measured for it."""

    profile: str
    target: str
    precision: str
    variant: str | None = None  # e.g. openvino's "device-default" inference precision
    status: str = "pending"  # "ok", "failed" or "skipped"
    reason: str | None = None
    accuracy: dict | None = None  # per output numbers, data kind, gates
    latency: dict | None = None  # ms: p50, p90, p99, mean, min, max, runs, threads, cold start
    memory: dict | None = None  # peak RSS bytes of the benchmark process
    size: int | None = None  # bytes of the model file(s)
    bundle: str | None = None
    archive: str | None = None
    archive_sha256: str | None = None
    runtime: dict | None = None  # what the runtime reported it configured
    attempts: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    gates: list[dict] = field(default_factory=list)
    timings: dict = field(default_factory=dict)  # seconds per step (lower, verify, bench)
    log: str | None = None

    @property
    def key(self) -> str:
        return f"{self.profile}/{self.name}"

    @property
    def name(self) -> str:
        """The bundle's folder name: target-precision[-variant]."""
        return "-".join(p for p in (self.target, self.precision, self.variant) if p)

    def fail(self, reason: str) -> None:
        self.status, self.reason = "failed", reason

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Report:
    """Everything about one build."""

    edgepack_version: str
    created: str
    source: dict
    host: dict
    tools: dict
    settings: dict
    data: dict = field(default_factory=dict)
    stages: list[dict] = field(default_factory=list)
    cells: list[Cell] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    @property
    def ok(self) -> bool:
        return all(c.status != "failed" for c in self.cells) and any(
            c.status == "ok" for c in self.cells)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ok"] = self.ok
        return d


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
