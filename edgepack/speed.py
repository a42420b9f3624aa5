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
from dataclasses import dataclass

ESTIMATE_BAND = 0.03  # counts repeat within ~1%: closer than this to the threshold is a tie
CONFIDENCE = 0.95
# two-sided 95% Student t quantiles by degrees of freedom (1..30), for host rounds
T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
       2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
       2.060, 2.056, 2.052, 2.048, 2.045, 2.042)

FASTER, NOT_FASTER, UNDECIDED, REPORTED = "faster", "not faster", "undecided", "reported"
ERROR = "error"  # the comparison could not be made (a timing process failed)
SOURCES = {"board": "measured on the board", "estimate": "estimated for the device's CPU",
           "host": "measured on the build host"}


@dataclass(frozen=True)
class Decision:
    """A speedup over fp32 (fp32 time / this time), its interval, and what it means against
    the threshold (0: reported only)."""

    source: str  # "board", "estimate" or "host"
    speedup: float
    low: float
    high: float
    threshold: float
    verdict: str  # FASTER, NOT_FASTER, UNDECIDED, REPORTED (no threshold) or ERROR
    detail: str  # how it was decided, in words
    rounds: int = 1

    @property
    def shipped(self) -> bool:
        return self.verdict in (FASTER, REPORTED)

    def gate(self) -> dict:
        """The speed gate as a gate record, like the accuracy and release gates."""
        return {"name": "speedup", "value": self.speedup, "limit": self.threshold,
                "kind": "min", "ok": self.shipped, "source": self.source,
                "verdict": self.verdict, "low": self.low, "high": self.high,
                "rounds": self.rounds, "gate": f"min_speedup ({SOURCES[self.source]})"}

    def to_dict(self) -> dict:
        return {"speedup": self.speedup, "low": self.low, "high": self.high,
                "min_speedup": self.threshold, "verdict": self.verdict,
                "source": self.source, "rounds": self.rounds, "detail": self.detail}


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
    return Decision("estimate", ratio, low, high, threshold, verdict,
                    f"estimated on {cpu}: fp32 {fp32_ms:.4g} ms, this {this_ms:.4g} ms "
                    f"(instruction counts; ties within ±{ESTIMATE_BAND:.0%} are undecided)")


def from_board(fp32_ms: float, this_ms: float, threshold: float, board: str) -> Decision:
    ratio = fp32_ms / this_ms
    verdict = _verdict(ratio, ratio, threshold)
    return Decision("board", ratio, ratio, ratio, threshold, verdict,
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
    return Decision("host", math.exp(mean), low, high, threshold, verdict, detail, rounds=n)


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
