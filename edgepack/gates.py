"""Release gates on what a bundle costs on the device: latency, size and memory.

Accuracy and speedup gates come from the profile's budgets; these come from the user (flags
or the config file's ``[[gates]]`` tables) and may match some cells only (by profile, target,
precision). Every limit that applies to a cell becomes a gate record in the report; a missed
one fails the cell (exit 1) and report.md, report.html and the JUnit XML name it.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgepack import settings
from edgepack.errors import EdgepackError, UsageError

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


def resource_gates(limits: tuple[Limits, ...], profile: str, target: str, precision: str,
                   latency: dict | None, size: int | None, memory: dict | None) -> list[dict]:
    """Gate records for every limit that matches the cell (the strictest of each kind)."""
    gates: dict[str, dict] = {}

    def add(name: str, value: float | None, limit: float | None, note: str) -> None:
        if value is None or limit is None:
            return
        if name in gates and gates[name]["limit"] <= limit:
            return
        gates[name] = {"name": name, "value": value, "limit": limit, "kind": "max",
                       "ok": value <= limit, "gate": note}

    for lim in limits:
        if not lim.matches(profile, target, precision):
            continue
        pct = lim.latency_percentile
        lat = latency or {}
        if lat.get("estimated"):  # an estimate has a p50 only: it stands for every percentile
            add("latency.p50_ms (estimated)", lat.get("p50"), lim.max_latency_ms,
                f"max_latency_ms ({pct}, {lat.get('measured_on')}: its p50)")
        else:
            add(f"latency.{pct}_ms", lat.get(pct), lim.max_latency_ms,
                f"max_latency_ms ({pct}, measured on {lat.get('measured_on', '?')})")
        add("size_mb", size / 2**20 if size is not None else None, lim.max_size_mb,
            "max_size_mb (the bundle's model files)")
        rss = (memory or {}).get("peak_rss_bytes")
        add("peak_rss_mb", rss / 2**20 if rss else None, lim.max_peak_rss_mb,
            "max_peak_rss_mb (benchmark process high-water mark)")
    return list(gates.values())


def describe(gate: dict) -> str:
    op = ">=" if gate["kind"] == "min" else "<="
    return f"{gate.get('gate', gate['name']).split(' ')[0]}: {gate['name']} = " \
           f"{gate['value']:.4g} (needs {op} {gate['limit']:g})"
