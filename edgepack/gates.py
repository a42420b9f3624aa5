"""Gates: one record for every check of a number against its limit (accuracy, selftest,
speedup, release), and the release limits on what a bundle costs on the device: latency,
size and memory.

Accuracy and speedup gates come from the profile's budgets; release limits come from the user
(flags or the config file's ``[[gates]]`` tables) and may match some cells only (by profile,
target, precision). Every limit that applies to a cell becomes a :class:`Gate` in the report;
a missed one fails the cell (exit 1) and report.md, report.html and the JUnit XML name it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from edgepack import settings, speed
from edgepack.device.core import passes
from edgepack.errors import EdgepackError, UsageError

Kind = Literal["min", "max"]


@dataclass(frozen=True)
class Gate:
    """One number checked against its limit: ``min`` (value >= limit) or ``max``.

    ``label`` names where the limit comes from when that is not the budget of the cell's
    precision (a release limit, the speed gate); ``decision`` is the speed decision behind a
    speedup gate."""

    name: str  # e.g. "logits.cosine", "latency.p90_ms", "speedup"
    value: float
    limit: float
    kind: Kind
    ok: bool
    label: str | None = None
    decision: speed.Decision | None = None

    @classmethod
    def check(cls, name: str, value: float, limit: float, kind: Kind,
              label: str | None = None) -> Gate:
        return cls(name, value, limit, kind, passes(value, limit, kind), label)

    @classmethod
    def of_speed(cls, d: speed.Decision) -> Gate:
        """The speed decision as a gate (speedup >= the threshold, from the source it names)."""
        return cls("speedup", d.speedup, d.threshold, "min", d.shipped,
                   f"min_speedup ({d.source.words})", d)

    def describe(self) -> str:
        """One line, e.g. 'logits.cosine 0.9794 (needs >= 0.98)', with the limit's origin
        first where it has one ('max_latency_ms: latency.p90_ms 6.1 (needs <= 5)')."""
        op = ">=" if self.kind == "min" else "<="
        where = f"{self.label.split(' ')[0]}: " if self.label else ""
        return f"{where}{self.name} {self.value:.6g} (needs {op} {self.limit:g})"

    def to_json(self) -> dict:
        out = {"name": self.name, "value": self.value, "limit": self.limit, "kind": self.kind,
               "ok": self.ok}
        d = self.decision
        if d is not None:
            out.update(source=str(d.source), verdict=str(d.verdict), low=d.low, high=d.high,
                       rounds=d.rounds)
        if self.label is not None:
            out["gate"] = self.label
        return out

    @classmethod
    def from_json(cls, d: dict) -> Gate:
        decision = None
        if "verdict" in d:
            decision = speed.Decision(speed.Source(d["source"]), d["value"], d.get("low"),
                                      d.get("high"), d["limit"], speed.Verdict(d["verdict"]),
                                      "", d.get("rounds", 1))
        return cls(d["name"], d["value"], d["limit"], d["kind"], bool(d["ok"]), d.get("gate"),
                   decision)

PERCENTILES = ("p50", "p90", "p99", "mean", "max")
MATCH_KEYS = ("profile", "target", "precision")
LIMIT_KEYS = ("max_latency_ms", "latency_percentile", "max_size_mb", "max_peak_rss_mb")


@dataclass(frozen=True)
class Limits:
    """Limits for the cells it matches (None matches anything)."""

    profile: str | None = None
    target: str | None = None
    precision: str | None = None
    max_latency_ms: float | None = None
    latency_percentile: str = "p50"
    max_size_mb: float | None = None
    max_peak_rss_mb: float | None = None

    def matches(self, profile: str, target: str, precision: str) -> bool:
        return all(want is None or want == have for want, have in
                   ((self.profile, profile), (self.target, target),
                    (self.precision, precision)))

    @property
    def empty(self) -> bool:
        return (self.max_latency_ms, self.max_size_mb, self.max_peak_rss_mb) == (None,) * 3

    def check(self, prefix: str, error: type[EdgepackError] = UsageError) -> Limits:
        """``error`` for a value out of range, naming the config key ``prefix.key``."""
        for key in LIMIT_KEYS:
            value = getattr(self, key)
            if value is not None:
                settings.check(key, value, f"{prefix}.{key}", error)
        return self


@dataclass(frozen=True)
class Cost:
    """What a bundle costs on the device, as the release gates read it: the latency from the
    best source (``latency`` by percentile name; an estimate has a p50 only, which then stands
    for every percentile), the model files' size and the benchmark's peak RSS."""

    latency: dict[str, float]  # percentile ("p50", "p90", ...) -> ms
    measured_on: str  # e.g. "build host", "board", "estimate for Cortex-A76 @ 2.4 GHz"
    estimated: bool
    size: int | None
    peak_rss_bytes: int | None


def resource_gates(limits: tuple[Limits, ...], profile: str, target: str, precision: str,
                   cost: Cost) -> list[Gate]:
    """Gates for every limit that matches the cell (the strictest of each kind)."""
    gates: dict[str, Gate] = {}

    def add(name: str, value: float | None, limit: float | None, note: str) -> None:
        if value is None or limit is None:
            return
        if name in gates and gates[name].limit <= limit:
            return
        gates[name] = Gate.check(name, value, limit, "max", note)

    for lim in limits:
        if not lim.matches(profile, target, precision):
            continue
        pct = lim.latency_percentile
        if cost.estimated:  # an estimate has a p50 only: it stands for every percentile
            add("latency.p50_ms (estimated)", cost.latency.get("p50"), lim.max_latency_ms,
                f"max_latency_ms ({pct}, {cost.measured_on}: its p50)")
        else:
            add(f"latency.{pct}_ms", cost.latency.get(pct), lim.max_latency_ms,
                f"max_latency_ms ({pct}, measured on {cost.measured_on})")
        add("size_mb", cost.size / 2**20 if cost.size is not None else None, lim.max_size_mb,
            "max_size_mb (the bundle's model files)")
        rss = cost.peak_rss_bytes
        add("peak_rss_mb", rss / 2**20 if rss else None, lim.max_peak_rss_mb,
            "max_peak_rss_mb (benchmark process high-water mark)")
    return list(gates.values())
