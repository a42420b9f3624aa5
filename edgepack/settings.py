"""Every value a user can give edgepack, with its range: one table, checked in one place.

The command line, device profiles (and later the config file) check their values here, before
any work, so a value out of range is always one line naming the flag or the file and key,
exit 2. ``python -m edgepack.settings`` prints the table the README quotes (a test keeps the
two equal).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from edgepack.errors import EdgepackError, UsageError

PRECISIONS = ("fp32", "fp16", "int8-dynamic", "int8")
AUTO = "auto"  # --precision auto: every precision, the fastest within budget chosen
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


@dataclass(frozen=True)
class Number:
    """A numeric value and its range. ``low_open``/``high_open`` exclude the bound itself."""

    key: str
    kind: type  # int or float
    low: float | None
    high: float | None
    meaning: str
    unit: str = ""
    low_open: bool = False
    high_open: bool = False
    flag: str | None = None  # the command-line flag, e.g. "--runs"
    profile_key: str | None = None  # the key in a device profile, e.g. "threads"

    def describe(self) -> str:
        """The range in words and interval notation, e.g. 'a number in (0, 1]'."""
        what = "an integer" if self.kind is int else "a number"
        lo = "-inf" if self.low is None else _num(self.low)
        hi = "inf" if self.high is None else _num(self.high)
        if self.high is None:
            return f"{what} {'>' if self.low_open else '>='} {lo}"
        left = "(" if self.low_open else "["
        right = ")" if self.high_open else "]"
        return f"{what} in {left}{lo}, {hi}{right}"

    def check(self, value, where: str, error: type[EdgepackError] = UsageError):
        """``value`` converted to this kind, or ``error`` naming ``where`` and the range."""
        bad = isinstance(value, bool) or not isinstance(value, int | float)
        if not bad and self.kind is int and isinstance(value, float):
            bad = not value.is_integer()
        if not bad and not math.isfinite(value):
            bad = True
        if not bad:
            v = self.kind(value)
            if self.low is not None and (v < self.low or (self.low_open and v == self.low)):
                bad = True
            if self.high is not None and (v > self.high or (self.high_open and v == self.high)):
                bad = True
        if bad:
            unit = f" {self.unit}" if self.unit else ""
            raise error(f"{where}: {value!r} is out of range; it must be {self.describe()}{unit} "
                        f"({self.meaning})")
        return self.kind(value)


@dataclass(frozen=True)
class Choice:
    """A value taken from a fixed list."""

    key: str
    choices: tuple[str, ...]
    meaning: str
    flag: str | None = None
    profile_key: str | None = None

    def describe(self) -> str:
        return "one of " + ", ".join(self.choices)

    def check(self, value, where: str, error: type[EdgepackError] = UsageError) -> str:
        if value not in self.choices:
            raise error(f"{where}: {value!r} is not valid; it must be {self.describe()} "
                        f"({self.meaning})")
        return value


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(v)


# --------------------------------------------------------------------------- the table
SETTINGS: dict[str, Number | Choice] = {s.key: s for s in (
    Number("runs", int, 1, 10_000_000, "timed runs per bundle", flag="--runs"),
    Number("min_time", float, 0.01, 3600, "time each bundle for at least this long", "s",
           flag="--min-time"),
    Number("bench_rounds", int, 1, 100, "benchmark each bundle in this many fresh processes "
           "(the median round is reported; report compare uses their spread as the noise)",
           flag="--bench-rounds"),
    Number("jobs", int, 1, 256, "profile/target groups lowered and verified in parallel "
           "(benchmarks always run alone)", flag="--jobs"),
    Number("warmup", int, 0, 1_000_000, "untimed runs before timing", flag="--warmup"),
    Number("threads", int, 1, 1024, "inference threads", flag="--threads",
           profile_key="threads"),
    Number("timeout", float, 10, 7 * 86400,
           "for each lowering, evaluation, selftest or benchmark process; below 10 s not even "
           "a runtime loads reliably", "s", flag="--timeout"),
    Number("max_top1_drop", float, 0, 100,
           "reference top-1 accuracy minus the bundle's, classifiers with labels", "points",
           flag="--max-accuracy-drop", profile_key="accuracy.<precision>.max_top1_drop"),
    Number("min_cosine", float, 0, 1, "cosine similarity per output against the reference",
           low_open=True, flag="--min-cosine", profile_key="accuracy.<precision>.min_cosine"),
    Number("max_rel_error", float, 0, None,
           "max abs error over the reference's max abs value, per output",
           profile_key="accuracy.<precision>.max_rel_error"),
    Number("min_top1_agreement", float, 0, 1,
           "fraction of samples whose top-1 class (or integer output) matches the reference",
           profile_key="accuracy.<precision>.min_top1_agreement"),
    Number("min_speedup", float, 0, 100,
           "fp32 p50 over this precision's p50 (same profile and target, timed interleaved); "
           "0 reports the speedup without gating", "×", flag="--min-speedup",
           profile_key="speed.<precision>.min_speedup"),
    Number("max_latency_ms", float, 0, None, "release gate: the bundle's latency at "
           "latency_percentile must not exceed this", "ms", low_open=True,
           flag="--max-latency-ms"),
    Choice("latency_percentile", ("p50", "p90", "p99", "mean", "max"),
           "which latency max_latency_ms gates", flag="--latency-percentile"),
    Number("max_size_mb", float, 0, None, "release gate: the bundle's model files", "MiB",
           low_open=True, flag="--max-size-mb"),
    Number("max_peak_rss_mb", float, 0, None, "release gate: the benchmark process's peak RSS",
           "MiB", low_open=True, flag="--max-peak-rss-mb"),
    Number("compare_threshold", float, 0, 100, "report compare: how much worse a cell may "
           "get (relative for latency, size and memory; absolute for cosine and top-1 points)",
           flag="--*-threshold"),
    Number("cores", int, 1, 1024, "CPU cores of the device", profile_key="cores"),
    Number("memory_mb", int, 16, 16 * 2**20, "memory of the device", "MiB",
           profile_key="memory_mb"),
    Choice("precision", (*PRECISIONS, AUTO), "number formats to build; auto builds every "
           "one and marks the fastest within budget", flag="--precision",
           profile_key="default_precisions"),
    Choice("calibration", CALIBRATION_METHODS, "static int8 calibration method",
           flag="--calibration"),
    Choice("arch", ("aarch64", "x86_64"), "the device's CPU architecture", profile_key="arch"),
)}

VERSION_RE = re.compile(r"^\d+\.\d+$")


def check(key: str, value, where: str, error: type[EdgepackError] = UsageError):
    """Check one value against its row of the table; returns it (converted)."""
    return SETTINGS[key].check(value, where, error)


def check_version(value, where: str, error: type[EdgepackError]) -> str:
    """A MAJOR.MINOR version string such as a profile's python = "3.11" or glibc = "2.36"."""
    if not isinstance(value, str) or not VERSION_RE.match(value):
        raise error(f"{where}: {value!r} is not a version; write it as MAJOR.MINOR, "
                    "e.g. \"2.36\"")
    return value


def read_toml(path, what: str, error: type[EdgepackError]) -> dict:
    """A TOML file's contents; ``error`` saying "<what> file PATH does not exist / cannot be
    read / is not valid TOML" otherwise (profiles and the config file both use this)."""
    import tomllib

    if not path.is_file():
        raise error(f"{what} file {path} does not exist" if not path.exists()
                    else f"{what} {path} is not a file")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise error(f"{what} file {path} cannot be read: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise error(f"{what} file {path} is not valid TOML: {e}") from None


def markdown_table() -> str:
    """The README's table of every user-facing value and its range."""
    lines = ["| value | flag | profile key | range | meaning |", "|---|---|---|---|---|"]
    for s in SETTINGS.values():
        unit = f" {s.unit}" if isinstance(s, Number) and s.unit else ""
        lines.append(f"| `{s.key}` | {f'`{s.flag}`' if s.flag else '-'} | "
                     f"{f'`{s.profile_key}`' if s.profile_key else '-'} | "
                     f"{s.describe()}{unit} | {s.meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
