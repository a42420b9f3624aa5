"""The records a cell is made of, typed from where they are made to where they are rendered:
latency and memory, the device estimate, the run on the emulated CPU, each board's run, an
earlier bundle kept, a cache restore. Each turns into JSON once, at the edge (report.json,
the build cache), through its own ``to_json``/``from_json`` pair; ``from_json`` also reads
the records of earlier edgepack versions of the same schema (keys are only ever added)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from edgepack.cpus import Estimate
from edgepack.gates import Gate
from edgepack.speed import Source

HOST = "build host"  # what a latency measured here says it was measured on


def _some(d: dict) -> dict:
    """``d`` without its None values (keys a record leaves out when they do not apply)."""
    return {k: v for k, v in d.items() if v is not None}


@dataclass(frozen=True)
class Latency:
    """Milliseconds per inference from one benchmark process (the harness in
    ``device.core``), where they were measured, and for repeated rounds each round's p50."""

    p50: float
    p90: float
    p99: float
    mean: float
    min: float
    max: float
    runs: int
    measured_on: str  # "build host" or the board's name
    warmup: int | None = None
    threads: int | None = None
    cold_start_ms: dict[str, float] = field(default_factory=dict)  # load, first_inference
    rounds_p50_ms: tuple[float, ...] = ()
    source: Source = Source.HOST

    def percentile(self, name: str) -> float | None:
        """A percentile or statistic by its report name ("p50", "p90", "p99", "mean",
        "max"), None for another name."""
        return getattr(self, name) if name in ("p50", "p90", "p99", "mean", "min", "max") \
            else None

    @property
    def cold_ms(self) -> float | None:
        """Load plus first inference."""
        c = self.cold_start_ms
        return c["load"] + c["first_inference"] if c else None

    @classmethod
    def of_bench(cls, result: dict, measured_on: str = HOST,
                 source: Source = Source.HOST) -> Latency:
        """From the harness's result (``device.core.bench_bundle``)."""
        lat = result["latency_ms"]
        return cls(lat["p50"], lat["p90"], lat["p99"], lat["mean"], lat["min"], lat["max"],
                   lat["runs"], measured_on, lat.get("warmup"), result.get("threads"),
                   dict(result.get("cold_start_ms") or {}), source=source)

    def to_json(self) -> dict:
        out = {"p50": self.p50, "p90": self.p90, "p99": self.p99, "mean": self.mean,
               "min": self.min, "max": self.max, "runs": self.runs, "warmup": self.warmup,
               "threads": self.threads, "cold_start_ms": self.cold_start_ms or None,
               "measured_on": self.measured_on, "source": str(self.source)}
        if self.rounds_p50_ms:
            out["rounds_p50_ms"] = list(self.rounds_p50_ms)
        return _some(out)

    @classmethod
    def from_json(cls, d: dict, source: Source | None = None) -> Latency:
        return cls(d["p50"], d.get("p90", d["p50"]), d.get("p99", d["p50"]),
                   d.get("mean", d["p50"]), d.get("min", d["p50"]), d.get("max", d["p50"]),
                   d.get("runs", 0), d.get("measured_on", "?"), d.get("warmup"),
                   d.get("threads"), dict(d.get("cold_start_ms") or {}),
                   tuple(d.get("rounds_p50_ms") or ()),
                   Source(d.get("source") or source or Source.HOST))


@dataclass(frozen=True)
class Memory:
    peak_rss_bytes: int  # of the benchmark process
    rss_before_load_bytes: int | None = None

    def to_json(self) -> dict:
        return _some({"peak_rss_bytes": self.peak_rss_bytes,
                      "rss_before_load_bytes": self.rss_before_load_bytes})

    @classmethod
    def from_json(cls, d: dict) -> Memory:
        return cls(d.get("peak_rss_bytes", 0), d.get("rss_before_load_bytes"))


@dataclass(frozen=True)
class Counted:
    """How the instructions behind an estimate were counted."""

    cpu: str  # qemu's CPU model
    spread: float  # (largest - smallest) / median of the counted windows
    windows: int
    threads: int
    seconds: float

    def to_json(self) -> dict:
        return {"cpu": self.cpu, "spread": self.spread, "windows": self.windows,
                "threads": self.threads, "seconds": self.seconds}

    @classmethod
    def from_json(cls, d: dict) -> Counted:
        return cls(d["cpu"], d["spread"], d["windows"], d["threads"], d["seconds"])


DeviceStatus = Literal["ok", "failed", "not estimated"]


@dataclass(frozen=True)
class DeviceEstimate:
    """A bundle's estimated latency on the profile's CPU, or why there is none."""

    status: DeviceStatus
    reason: str | None = None
    estimate: Estimate | None = None
    counted: Counted | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.estimate is not None

    @classmethod
    def of(cls, estimate: Estimate, counted: Counted) -> DeviceEstimate:
        return cls("ok", None, estimate, counted)

    def to_json(self) -> dict:
        if not self.ok:
            return {"status": self.status, "reason": self.reason}
        return {"status": "ok", **self.estimate.to_json(), "counted": self.counted.to_json()}

    @classmethod
    def from_json(cls, d: dict) -> DeviceEstimate:
        if d.get("status") != "ok":
            return cls(d.get("status", "failed"), d.get("reason"))
        counted = d.get("counted")
        return cls("ok", None, Estimate.from_json(d),
                   Counted.from_json(counted) if counted else None)


RunStatus = Literal["ok", "failed", "not emulated"]


@dataclass(frozen=True)
class Emulated:
    """The bundle on the profile's CPU under qemu (``--emulate``): its selftest and its
    outputs on the evaluation samples, gated like the host's. No latency: emulated time
    means nothing."""

    status: RunStatus
    reason: str | None = None
    cpu: str | None = None  # qemu's CPU model
    verified_on: str | None = None
    selftest: str | None = None  # its last line
    seconds: float | None = None
    outputs: dict | None = None  # per output, the headline numbers
    gates: tuple[Gate, ...] = ()

    def to_json(self) -> dict:
        return _some({"cpu": self.cpu, "verified_on": self.verified_on,
                      "selftest": self.selftest, "seconds": self.seconds,
                      "outputs": self.outputs,
                      "gates": [g.to_json() for g in self.gates] if self.outputs is not None
                      else None, "status": self.status, "reason": self.reason})

    @classmethod
    def from_json(cls, d: dict) -> Emulated:
        return cls(d.get("status", "failed"), d.get("reason"), d.get("cpu"),
                   d.get("verified_on"), d.get("selftest"), d.get("seconds"), d.get("outputs"),
                   tuple(Gate.from_json(g) for g in d.get("gates") or ()))


@dataclass(frozen=True)
class BoardRun:
    """A bundle on a board (``--remote``): its selftest, its outputs on the evaluation
    samples (gated like the host's) and the board's own benchmark."""

    remote: str
    status: Literal["ok", "failed"]
    reason: str | None = None
    identity: dict | None = None  # what the board says it is (model, machine, kernel, python)
    selftest: list[str] | None = None
    outputs: dict | None = None
    gates: tuple[Gate, ...] = ()
    latency: Latency | None = None
    memory: Memory | None = None
    machine: dict | None = None
    runtime: dict | None = None

    def to_json(self) -> dict:
        out = {"remote": self.remote, "identity": self.identity, "selftest": self.selftest}
        if self.outputs is not None:
            out.update(outputs=self.outputs, gates=[g.to_json() for g in self.gates],
                       latency=self.latency.to_json() if self.latency else None,
                       memory=self.memory.to_json() if self.memory else None,
                       machine=self.machine, runtime=self.runtime)
        out["status"] = self.status
        if self.reason is not None:
            out["reason"] = self.reason
        return out

    @classmethod
    def from_json(cls, d: dict) -> BoardRun:
        lat, mem = d.get("latency"), d.get("memory")
        return cls(d["remote"], d.get("status", "failed"), d.get("reason"), d.get("identity"),
                   d.get("selftest"), d.get("outputs"),
                   tuple(Gate.from_json(g) for g in d.get("gates") or ()),
                   Latency.from_json(lat, Source.BOARD) if lat else None,
                   Memory.from_json(mem) if mem else None, d.get("machine"), d.get("runtime"))


@dataclass(frozen=True)
class Previous:
    """An earlier build's ok bundle of a cell that failed now: still in the folder."""

    bundle: str
    archive: str
    archive_sha256: str | None
    build: dict

    def to_json(self) -> dict:
        return {"bundle": self.bundle, "archive": self.archive,
                "archive_sha256": self.archive_sha256, "build": self.build}

    @classmethod
    def from_json(cls, d: dict) -> Previous:
        return cls(d["bundle"], d["archive"], d.get("archive_sha256"), dict(d.get("build") or {}))


@dataclass(frozen=True)
class Cached:
    """A cell restored from the build cache: when and where it was built."""

    built: str | None
    host: str | None
    rebenchmarked: bool = False

    def to_json(self) -> dict:
        out = {"built": self.built, "host": self.host}
        if self.rebenchmarked:
            out["rebenchmarked"] = True
        return out

    @classmethod
    def from_json(cls, d: dict) -> Cached:
        return cls(d.get("built"), d.get("host"), bool(d.get("rebenchmarked")))
