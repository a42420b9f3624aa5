"""Every value a user can give edgepack, with its range: one table, checked in one place.

The command line, device profiles and the config file check their values here, before any
work, so a value out of range is always one line naming the flag or the file and key, exit 2.
Build options name their row (``edgepack.options``); ``python -m edgepack.options`` prints the
table docs/cli.md quotes (a test keeps the two equal).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum

from edgepack.errors import EdgepackError, UsageError


class Precision(StrEnum):
    """A bundle's number format (compared and stored as its name, e.g. "int8-dynamic")."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8_DYNAMIC = "int8-dynamic"  # int8 weights, activations quantized at run time
    INT8 = "int8"  # static: weights and activations, calibrated
    INT4_WEIGHTS = "int4-weights"  # weight-only int4 of MatMul weights

    @property
    def is_int8(self) -> bool:
        return self in (Precision.INT8, Precision.INT8_DYNAMIC)


PRECISIONS = tuple(Precision)
# what a target builds unless it says otherwise (int4-weights: weight-only int4 of MatMul
# weights, for the runtimes that have kernels for it)
COMMON_PRECISIONS = PRECISIONS[:4]
# built only when named: int4-weights trades accuracy for size, not speed, so --precision auto
# (the fastest within budget) leaves it out
OPT_IN_PRECISIONS = (Precision.INT4_WEIGHTS,)
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
    profile_key: str | None = None  # the key in a device profile, e.g. "threads"

    def describe(self) -> str:
        """The range in words and interval notation, e.g. 'a number in (0, 1]'."""
        what = "an integer" if self.kind is int else "a number"
        lo = "-inf" if self.low is None else _num(self.low)
        hi = "inf" if self.high is None else _num(self.high)
        if self.low is None and self.high is None:
            return f"{what}, finite"
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
    Number("runs", int, 1, 10_000_000, "timed runs per bundle"),
    Number("min_time", float, 0.01, 3600, "time each bundle for at least this long", "s"),
    Number("bench_rounds", int, 1, 100, "benchmark each bundle in this many fresh processes "
           "(the median round is reported; report compare uses their spread as the noise)"),
    Number("jobs", int, 1, 256, "profile/target groups lowered and verified in parallel "
           "(benchmarks always run alone)"),
    Number("warmup", int, 0, 1_000_000, "untimed runs before timing"),
    Number("threads", int, 1, 1024, "inference threads", profile_key="threads"),
    Number("timeout", float, 10, 7 * 86400,
           "for each lowering, evaluation, selftest or benchmark process; below 10 s not even "
           "a runtime loads reliably", "s"),
    Number("max_top1_drop", float, 0, 100,
           "reference top-1 accuracy minus the bundle's, classifiers with labels", "points",
           profile_key="accuracy.<precision>.max_top1_drop"),
    Number("min_cosine", float, 0, 1, "cosine similarity per output against the reference",
           low_open=True, profile_key="accuracy.<precision>.min_cosine"),
    Number("max_rel_error", float, 0, None,
           "max abs error over the reference's max abs value, per output",
           profile_key="accuracy.<precision>.max_rel_error"),
    Number("min_top1_agreement", float, 0, 1,
           "fraction of samples whose top-1 class (or integer output) matches the reference; "
           "for a sequence output, of its steps",
           profile_key="accuracy.<precision>.min_top1_agreement"),
    Number("min_map_iou", float, 0, 1, "map outputs: IoU of the maps thresholded at 0.3 of "
           "the reference's max", profile_key="accuracy.<precision>.min_map_iou"),
    Number("max_floor_rel_error", float, 0, None, "map and sequence outputs, instead of "
           "max_rel_error: mean relative error of the values above 0.3 of the reference's "
           "max", profile_key="accuracy.<precision>.max_floor_rel_error"),
    Choice("output_kind", ("values", "map", "sequence"), "how an output is compared "
           "(default: detected from its shape and values, and recorded in the report)",
           profile_key="accuracy.outputs.<output>"),
    Number("min_speedup", float, 0, 100,
           "fp32 p50 over this precision's p50 (same profile and target, timed interleaved); "
           "0 reports the speedup without gating", "×",
           profile_key="speed.<precision>.min_speedup"),
    Number("max_latency_ms", float, 0, None, "release gate: the bundle's latency at "
           "latency_percentile must not exceed this", "ms", low_open=True),
    Choice("latency_percentile", ("p50", "p90", "p99", "mean", "max"),
           "which latency max_latency_ms gates"),
    Number("max_size_mb", float, 0, None, "release gate: the bundle's model files", "MiB",
           low_open=True),
    Number("max_peak_rss_mb", float, 0, None, "release gate: the benchmark process's peak RSS",
           "MiB", low_open=True),
    Number("compare_threshold", float, 0, 100, "report compare: how much worse a cell may "
           "get (relative for latency, size and memory; absolute for cosine and top-1 points)"),
    Number("cores", int, 1, 1024, "CPU cores of the device", profile_key="cores"),
    Number("memory_mb", int, 16, 16 * 2**20, "memory of the device", "MiB",
           profile_key="memory_mb"),
    Number("clock_ghz", float, 0.1, 10, "the device CPU's clock (device latency estimates)",
           "GHz", profile_key="clock_ghz"),
    Choice("precision", (*PRECISIONS, AUTO), "number formats to build; auto builds every "
           "one but int4-weights and marks the fastest within budget",
           profile_key="default_precisions"),
    Choice("calibration", CALIBRATION_METHODS, "static int8 calibration method"),
    Choice("device_estimate", ("auto", "on", "off"), "device latency estimates from "
           "instructions counted on the profile's CPU under qemu: auto estimates every profile "
           "whose CPU the build host is not (when the emulator is installed)"),
    Choice("arch", ("aarch64", "x86_64"), "the device's CPU architecture", profile_key="arch"),
    # preprocessing of images, WAV files and text (--preprocess KEY=VALUE, [preprocessing])
    Number("resize", int, 1, 16384, "images: the shorter side after resizing, before the "
           "centre crop to the input's size (default: the input's larger side)", "px"),
    Choice("crop", ("center", "none"), "images: center crops the resized image to the "
           "input's size; none stretches it to that size (aspect not kept)"),
    Number("scale", float, 0, None, "images: pixel values 0..255 are multiplied by this "
           "(default: 1/255 for a float input, 1 for uint8)", low_open=True),
    Number("mean", float, None, None, "images: subtracted after scale, one value or one per "
           "channel (default 0: not inferable)"),
    Number("std", float, 0, None, "images: divides after the mean, one value or one per "
           "channel (default 1: not inferable)", low_open=True),
    Choice("channels", ("RGB", "BGR", "GRAY"), "images: the channel order the model takes "
           "(default: RGB for 3 channels, GRAY for 1)"),
    Choice("layout", ("NCHW", "NHWC"), "images: where the input's channel axis is (default: "
           "from the input's shape)"),
    Number("sample_rate", int, 1, 1_000_000, "audio: the rate every WAV file must have; "
           "nothing is resampled (default: the files' own, which must agree)", "Hz"),
    Number("frame_length", int, 1, 100_000_000, "audio: samples taken from the start of "
           "each file, zero-padded to the input's length (default: the input's length)"),
    Number("max_tokens", int, 1, 1_000_000, "text: tokens kept per line, padded to the "
           "input's length (default: the input's length)"),
)}

# flags of other commands than build (build's own flags are declared in edgepack.options)
OTHER_FLAGS = {"compare_threshold": "--*-threshold"}

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
