"""Speed decisions that do not flip: "is this bundle faster than fp32?" answered from the best
source there is, with that source named.

Sources rank: measured on the board (``board``) > estimated for the profile's CPU from counted
instructions (``estimate``) > measured on the build host (``host``). Instruction counts repeat
within about 1%, so an estimate is compared directly (a ratio within ``ESTIMATE_BAND`` of the
threshold is undecided). Host timings are noisy (the same bundle can differ by 30% between
two processes on a busy 2-core runner), so a host decision is a confidence interval over
interleaved rounds of fresh processes: "faster" only when the whole interval clears the
threshold, "not faster" only when it lies below it, else "undecided within noise".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum

ESTIMATE_BAND = 0.03  # counts repeat within ~1%: closer than this to the threshold is a tie
CONFIDENCE = 0.95
# two-sided 95% Student t quantiles by degrees of freedom (1..30), for host rounds
T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
       2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
       2.060, 2.056, 2.052, 2.048, 2.045, 2.042)

class Source(StrEnum):
    """Where a speed figure comes from, best first."""

    BOARD = "board"  # measured on the board (--remote)
    ESTIMATE = "estimate"  # estimated for the profile's CPU from counted instructions
    HOST = "host"  # measured on the build host

    @property
    def words(self) -> str:
        return SOURCES[self]


class Verdict(StrEnum):
    FASTER = "faster"
    NOT_FASTER = "not faster"
    UNDECIDED = "undecided"
    REPORTED = "reported"  # no threshold: the ratio is reported, not decided on
    ERROR = "error"  # the comparison could not be made (a timing process failed)
    NOT_COMPARED = "not compared"  # no fp32 bundle to compare with


FASTER, NOT_FASTER, UNDECIDED, REPORTED = (Verdict.FASTER, Verdict.NOT_FASTER,
                                           Verdict.UNDECIDED, Verdict.REPORTED)
ERROR, NOT_COMPARED = Verdict.ERROR, Verdict.NOT_COMPARED
SOURCES = {Source.BOARD: "measured on the board",
           Source.ESTIMATE: "estimated for the device's CPU",
           Source.HOST: "measured on the build host"}


@dataclass(frozen=True)
class Decision:
    """A speedup over fp32 (fp32 time / this time), its interval, and what it means against
    the threshold (0: reported only). ``host`` is the build host's own ratio, kept beside a
    decision from another source for the report (never decided on)."""

    source: Source | None  # None only when nothing was compared
    speedup: float | None
    low: float | None
    high: float | None
    threshold: float
    verdict: Verdict
    detail: str  # how it was decided, in words
    rounds: int = 1
    host: Decision | None = None

    @property
    def shipped(self) -> bool:
        return self.verdict in (FASTER, REPORTED)

    @property
    def decided(self) -> bool:
        """A comparison was made (faster, not faster, undecided or reported)."""
        return self.verdict in (FASTER, NOT_FASTER, UNDECIDED, REPORTED)

    @property
    def refused(self) -> bool:
        """Accurate, but not shown faster: refused for its speed alone."""
        return self.verdict in (NOT_FASTER, UNDECIDED)

    def with_host(self, host: Decision | None) -> Decision:
        return replace(self, host=host)

    def to_json(self) -> dict:
        if self.verdict == NOT_COMPARED:
            return {"speedup": None, "min_speedup": self.threshold, "note": self.detail}
        out = {"speedup": self.speedup, "low": self.low, "high": self.high,
               "min_speedup": self.threshold, "verdict": str(self.verdict),
               "source": str(self.source), "rounds": self.rounds, "detail": self.detail}
        if self.host is not None:
            out["host"] = self.host.to_json()
        return out

    @classmethod
    def from_json(cls, d: dict) -> Decision:
        if "verdict" not in d:
            return not_compared(d.get("min_speedup") or 0.0, d.get("note", ""))
        host = d.get("host")
        return cls(Source(d["source"]), d.get("speedup"), d.get("low"), d.get("high"),
                   d.get("min_speedup") or 0.0, Verdict(d["verdict"]), d.get("detail", ""),
                   d.get("rounds", 1), cls.from_json(host) if host else None)


def not_compared(threshold: float, why: str) -> Decision:
    """No comparison: ``why`` (e.g. the fp32 cell failed)."""
    return Decision(None, None, None, None, threshold, NOT_COMPARED, why, 0)


def _verdict(low: float, high: float, threshold: float) -> str:
    if threshold <= 0:
        return REPORTED
    if low >= threshold:
        return FASTER
    if high < threshold:
        return NOT_FASTER
    return UNDECIDED


def from_estimates(fp32_ms: float, this_ms: float, threshold: float, cpu: str) -> Decision:
    """Two estimates for the same CPU model: their ratio is exact up to the counts' ~1%."""
    ratio = fp32_ms / this_ms
    low, high = ratio * (1 - ESTIMATE_BAND), ratio * (1 + ESTIMATE_BAND)
    verdict = _verdict(low, high, threshold)
    return Decision(Source.ESTIMATE, ratio, low, high, threshold, verdict,
                    f"estimated on {cpu}: fp32 {fp32_ms:.4g} ms, this {this_ms:.4g} ms "
                    f"(instruction counts; ties within ±{ESTIMATE_BAND:.0%} are undecided)")


def from_board(fp32_ms: float, this_ms: float, threshold: float, board: str) -> Decision:
    """p50s measured on the same board: no interval is claimed (one process each)."""
    ratio = fp32_ms / this_ms
    verdict = _verdict(ratio, ratio, threshold)
    return Decision(Source.BOARD, ratio, ratio, ratio, threshold, verdict,
                    f"measured on {board}: fp32 p50 {fp32_ms:.4g} ms, this {this_ms:.4g} ms")


def from_host_rounds(fp32_ms: list[float], this_ms: list[float], threshold: float
                     ) -> Decision:
    """Interleaved rounds (one fp32 and one candidate process each): the 95% confidence
    interval of the geometric-mean ratio of each round's pair."""
    logs = [math.log(a / b) for a, b in zip(fp32_ms, this_ms, strict=True)]
    n = len(logs)
    mean = sum(logs) / n
    if n > 1:
        sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (n - 1))
        half = T95[min(n - 1, len(T95)) - 1] * sd / math.sqrt(n)
    else:
        half = math.inf
    low, high = math.exp(mean - half), math.exp(mean + half)
    verdict = _verdict(low, high, threshold)
    if n == 1:
        detail = (f"timed on the build host in one interleaved round: speedup "
                  f"{math.exp(mean):.2f}× (one round has no interval; reported, not decided on)")
    else:
        detail = (f"timed on the build host in {n} interleaved rounds: speedup "
                  f"{math.exp(mean):.2f}× (95% interval {low:.2f}–{high:.2f}×)")
    return Decision(Source.HOST, math.exp(mean), low, high, threshold, verdict, detail, rounds=n)


def error(threshold: float, why: str, rounds: int = 0) -> Decision:
    """The comparison failed: ``why``."""
    return Decision(Source.HOST, 0.0, 0.0, 0.0, threshold, ERROR, why, rounds)


def describe(d: Decision) -> str:
    """One line for a declined or failed cell's reason."""
    if d.verdict == NOT_FASTER:
        return (f"not faster than fp32: {d.detail}; needs >= {d.threshold:g}× "
                f"({SOURCES[d.source]})")
    if d.verdict == ERROR:
        return f"speed comparison failed: {d.detail}"
    if d.verdict == UNDECIDED:
        return (f"speed undecided within noise: {d.detail}; needs >= {d.threshold:g}× "
                f"({SOURCES[d.source]})")
    return d.detail
