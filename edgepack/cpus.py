"""CPU models: what a device's CPU can issue per cycle, and how inference scales with threads,
as data (``targets/cpus/*.toml``, every constant with its public source). They turn the
instructions a bundle executes per inference on that CPU — counted under emulation on the
CPU's own qemu model — into an estimated latency on the device.

The estimate is a throughput bound: each instruction class (SIMD/FP, loads and stores,
branches, other integer) and the front end can issue so many instructions per cycle; the
class that needs the most cycles bounds the inference, and the CPU's ``efficiency`` (the
share of that bound real code reaches, fitted once per CPU to public measurements named in
its file) turns the bound into time. Threads divide the one-thread time by the CPU's measured
multi-thread speedup. The estimate says where it comes from and how far off it was from the
public figures it was checked against (its ``uncertainty`` u, the largest relative error
|estimate - published| / published seen there): its interval [p50 / (1 + u), p50 / (1 - u)]
holds every figure that lies within u of the estimate; a figure measured on the board always
overrides it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from edgepack import settings
from edgepack.errors import ProfileError

CLASSES = ("simd", "ldst", "branch", "other")  # instruction classes the counter reports
MODEL_VERSION = 2  # bumped when the formula changes (recorded with every estimate)
# 2: the interval is [p50 / (1 + u), p50 / (1 - u)] (u: the largest relative error of the
#    checks), so that it holds a figure the estimate misses by u either way


@dataclass(frozen=True)
class Counts:
    """Guest instructions executed per inference, by class (AArch64 encoding groups)."""

    total: float
    simd: float
    ldst: float
    branch: float
    other: float
    extra: dict = field(default_factory=dict)  # sub-classes: dot, fp16, fmla, wmul

    def to_dict(self) -> dict:
        return {"total": self.total, **{c: getattr(self, c) for c in CLASSES},
                **self.extra}

    @classmethod
    def from_dict(cls, d: dict) -> Counts:
        extra = {k: v for k, v in d.items() if k not in ("total", *CLASSES)}
        return cls(d["total"], *(d[c] for c in CLASSES), extra)


@dataclass(frozen=True)
class CpuModel:
    """One CPU core design, from its data file."""

    name: str  # as profiles name it, e.g. "Cortex-A76"
    qemu: str  # qemu's -cpu model
    midr_part: str  # the MIDR part number Linux shows as "CPU part"
    features: tuple[str, ...]  # what /proc/cpuinfo "Features" lists on a real one
    # each core's caches as Linux lists them: (level, type, size, "core" or "cluster")
    caches: tuple[tuple[int, str, str, str], ...]
    issue: dict[str, float]  # instructions per cycle: "decode" and each class
    efficiency: float  # the share of the issue bound real inference code reaches
    thread_speedup: dict[int, float]  # N threads -> speedup over 1 thread
    uncertainty: float  # largest relative error seen against public figures (e.g. 0.35)
    sources: dict[str, str]  # constant -> where it comes from
    source: str = ""  # the file

    @property
    def midr(self) -> int:
        """The MIDR_EL1 value Linux shows for this core (implementer Arm, revision r0p3)."""
        return (0x41 << 24) | (0xF << 16) | (int(self.midr_part, 16) << 4) | 3

    def speedup(self, threads: int) -> float:
        """Speedup of ``threads`` over one; beyond the table, the largest entry's."""
        known = sorted(self.thread_speedup)
        if threads <= 1 or not known:
            return 1.0
        if threads in self.thread_speedup:
            return self.thread_speedup[threads]
        below = [n for n in known if n < threads]
        return self.thread_speedup[below[-1]] if below else 1.0

    def cycles(self, counts: Counts) -> float:
        """The issue bound of one inference: the busiest class (or the front end)."""
        bounds = [counts.total / self.issue["decode"]]
        bounds += [getattr(counts, c) / self.issue[c] for c in CLASSES]
        return max(bounds)


@dataclass(frozen=True)
class Estimate:
    """An estimated device latency: never a measurement, and it says so."""

    p50_ms: float
    low_ms: float
    high_ms: float
    cpu: str
    clock_ghz: float
    threads: int
    instructions: dict  # per inference, by class (Counts.to_dict)
    bound: str  # which class bounds it
    uncertainty: float  # the CPU model's: the interval holds figures within it of p50
    model_version: int = MODEL_VERSION

    def to_json(self) -> dict:
        return {"source": "estimate", "p50_ms": self.p50_ms, "low_ms": self.low_ms,
                "high_ms": self.high_ms, "uncertainty": self.uncertainty, "cpu": self.cpu,
                "clock_ghz": self.clock_ghz, "threads": self.threads,
                "instructions": self.instructions, "bound": self.bound,
                "model_version": self.model_version, "label": self.label}

    @classmethod
    def from_json(cls, d: dict) -> Estimate:
        # model version 1 kept no uncertainty: its interval's upper side stands for it
        u = d.get("uncertainty", d["high_ms"] / d["p50_ms"] - 1 if d["p50_ms"] else 0.0)
        return cls(d["p50_ms"], d["low_ms"], d["high_ms"], d["cpu"], d["clock_ghz"],
                   d["threads"], dict(d["instructions"]), d["bound"], u,
                   d.get("model_version", 1))

    @property
    def label(self) -> str:
        """e.g. 'p50 ≈ 62 ms on Cortex-A76 @ 2.4 GHz, 4 threads (estimated from 178 M
        instructions, ±26%)'."""
        return (f"p50 ≈ {self.p50_ms:.3g} ms on {self.cpu} @ {self.clock_ghz:g} GHz, "
                f"{self.threads} thread{'s' if self.threads > 1 else ''} (estimated from "
                f"{self.instructions['total'] / 1e6:.3g} M instructions, "
                f"±{self.uncertainty * 100:.0f}%)")


def interval(p50_ms: float, uncertainty: float) -> tuple[float, float]:
    """The latencies an estimate of ``p50_ms`` stands for when it may be off by
    ``uncertainty`` (relative to the true figure) either way: p50 / (1 + u) .. p50 / (1 - u)."""
    return p50_ms / (1 + uncertainty), p50_ms / (1 - uncertainty)


def estimate(counts: Counts, cpu: CpuModel, clock_ghz: float, threads: int) -> Estimate:
    """The device latency ``counts`` stand for on ``cpu`` at ``clock_ghz`` with ``threads``."""
    one = cpu.cycles(counts) / cpu.efficiency / (clock_ghz * 1e9) * 1e3
    ms = one / cpu.speedup(threads)
    bounds = {"decode": counts.total / cpu.issue["decode"],
              **{c: getattr(counts, c) / cpu.issue[c] for c in CLASSES}}
    low, high = interval(ms, cpu.uncertainty)
    return Estimate(ms, low, high, cpu.name, clock_ghz, threads, counts.to_dict(),
                    max(bounds, key=bounds.get), cpu.uncertainty)


# --------------------------------------------------------------------------- the data
def cpus_dir() -> Path:
    from edgepack.profiles import profiles_dir

    return profiles_dir() / "cpus"


@cache
def all_cpus() -> dict[str, CpuModel]:
    """Every CPU model shipped, by its name in lower case."""
    found = {}
    for path in sorted(cpus_dir().glob("*.toml")):
        cpu = _parse(settings.read_toml(path, "CPU model", ProfileError), path)
        found[cpu.name.lower()] = cpu
    return found


def cpu_model(name: str) -> CpuModel | None:
    """The CPU model a profile's ``cpu`` names ("Cortex-A76"), or None when none is known."""
    return all_cpus().get(name.strip().lower())


def _parse(data: dict, path: Path) -> CpuModel:
    where = f"CPU model {path}"
    try:
        issue = {k: float(v) for k, v in data["issue"].items()}
        threads = {int(k): float(v) for k, v in data["thread_speedup"].items()}
        caches = tuple((int(level), str(kind), str(size), str(shared))
                       for level, kind, size, shared in data["caches"])
        cpu = CpuModel(data["name"], data["qemu"], data["midr_part"], tuple(data["features"]),
                       caches, issue, float(data["efficiency"]), threads,
                       float(data["uncertainty"]), dict(data["sources"]), str(path))
        int(cpu.midr_part, 16)  # ValueError: not a hexadecimal part number
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ProfileError(f"{where}: missing or malformed key ({e})") from None
    missing = [k for k in ("decode", *CLASSES) if k not in cpu.issue]
    bad = [k for k, v in cpu.issue.items() if not (math.isfinite(v) and v > 0)]
    if missing or bad or not 0 < cpu.efficiency <= 1 or not 0 <= cpu.uncertainty < 1:
        raise ProfileError(f"{where}: issue needs positive decode and {', '.join(CLASSES)}; "
                           "efficiency in (0, 1]; uncertainty in [0, 1)")
    return cpu


@dataclass(frozen=True)
class Guest:
    """The CPU a profile's bundles run on under emulation: its model and the features its
    ``/proc/cpuinfo`` lists (the profile's own list, else the CPU file's). Resolved once per
    planned cell; the build's emulation, its counting and ``verify --emulate`` show the guest
    this same CPU."""

    cpu: CpuModel
    features: tuple[str, ...]

    @property
    def qemu(self) -> str:
        return self.cpu.qemu


def guest_for(cpu: str, features: tuple[str, ...] = ()) -> Guest | None:
    """The guest for a profile's ``cpu`` and ``features`` (None: no CPU file names it)."""
    model = cpu_model(cpu)
    return None if model is None else Guest(model, tuple(features) or model.features)
