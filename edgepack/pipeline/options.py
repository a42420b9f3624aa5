"""BuildOptions: everything ``edgepack build`` takes, checked in one place before any work."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from edgepack import settings
from edgepack.errors import OutputError, UsageError
from edgepack.gates import Limits


@dataclass(frozen=True)
class BuildOptions:
    """Everything ``edgepack build`` takes. ``None`` means: the profile's (or target's) default."""

    model: Path
    profiles: tuple[str, ...] = ()
    targets: tuple[str, ...] | None = None
    precisions: tuple[str, ...] | None = None
    data: Path | None = None
    calib: Path | None = None
    eval: Path | None = None
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    fixed_inputs: dict[str, tuple[float, ...]] = field(default_factory=dict)  # --fix-input
    weights: Path | None = None  # --weights: a state dict for a PyTorch entry point
    trust_pickle: bool = False  # --trust-pickle: torch.load a pickled model (runs its code)
    emulate: bool = False  # --emulate: verify aarch64 profiles' bundles on an emulated CPU
    remotes: tuple[str, ...] = ()  # --remote [PROFILE=]user@host[:port]: boards over SSH
    vendor_wheels: bool = False  # --vendor-wheels: the device's wheels inside each bundle
    output: Path = Path("dist")
    runs: int | None = None
    min_time: float | None = None
    warmup: int = 10
    threads: int | None = None
    max_accuracy_drop: float | None = None
    min_cosine: float | None = None
    min_speedup: float | None = None  # overrides every non-fp32 precision's speed gate
    calibration_method: str = "minmax"
    allow_synthetic_calibration: bool = False
    target_options: dict = field(default_factory=dict)  # TargetOption.name -> value
    strategy: str | None = None  # only try lowering strategies whose name contains this
    timeout: float = 900.0
    bench_rounds: int = 1  # benchmark each bundle in this many fresh processes
    jobs: int = 1  # --jobs: profile/target groups lowered and verified at once
    cache: Path | None = None  # --cache DIR: the content-addressed build cache
    rebench: bool = False  # --rebench: time cells restored from the cache again
    limits: tuple[Limits, ...] = ()  # release gates: latency, size, memory (flags, config)
    cells: tuple[str, ...] = ()  # --cell PROFILE/TARGET[-PRECISION]: build only these

    @property
    def name(self) -> str:
        """The model's name: its output folder under ``output``."""
        return Path(str(self.model).split(":")[0]).stem


def validate(opts: BuildOptions) -> None:
    """UsageError/OutputError for any value out of range or any conflict, before any work."""
    if opts.runs is not None and opts.min_time is not None:
        raise UsageError("--runs and --min-time exclude each other: pass one")
    for key, value in (("runs", opts.runs), ("min_time", opts.min_time),
                       ("warmup", opts.warmup), ("threads", opts.threads),
                       ("bench_rounds", opts.bench_rounds), ("jobs", opts.jobs),
                       ("timeout", opts.timeout), ("max_top1_drop", opts.max_accuracy_drop),
                       ("min_cosine", opts.min_cosine), ("min_speedup", opts.min_speedup)):
        if value is not None:
            settings.check(key, value, settings.SETTINGS[key].flag)
    settings.check("calibration", opts.calibration_method, "--calibration")
    for limits in opts.limits:
        limits.check()
    for name in opts.precisions or ():
        settings.check("precision", name, "--precision")
    if opts.precisions is not None and not opts.precisions:
        raise UsageError("--precision names no precision; pass e.g. --precision fp32,int8")
    if opts.precisions and settings.AUTO in opts.precisions and len(opts.precisions) > 1:
        raise UsageError("--precision auto builds every precision: pass it alone")
    if opts.targets is not None and not opts.targets:
        raise UsageError("--target names no target; pass one or more target names (or leave "
                         "it out for the profile's runtimes)")
    if opts.strategy is not None and not opts.strategy.strip():
        raise UsageError("--strategy is empty; pass part of a strategy's name")
    if opts.emulate:
        from edgepack.emulation import SYSROOT

        missing = SYSROOT.missing()
        if missing:
            raise UsageError(f"--emulate: {missing}")
    from edgepack.remote import parse_remote

    for remote in opts.remotes:
        parse_remote(remote)
    check_output(opts.output, opts.name)
    if opts.cache is not None and opts.cache.exists() and not opts.cache.is_dir():
        raise OutputError(f"--cache: {opts.cache} exists and is not a folder; pass a folder "
                          "(it is created if missing)")


def check_output(output: Path, name: str) -> None:
    """OutputError when ``output`` (or ``output/name``) exists but is not a folder, or when
    nothing can be written where it would be created."""
    for path in (output, output / name):
        if path.exists() and not path.is_dir():
            raise OutputError(f"-o/--output: {path} exists and is not a folder; pass a folder "
                              "(it is created if missing)")
    anchor = output.absolute()
    while not anchor.exists():
        anchor = anchor.parent
    if not anchor.is_dir():
        raise OutputError(f"-o/--output: {anchor} is a file, so {output} cannot be created")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise OutputError(f"-o/--output: cannot write in {anchor}; pass a folder you can write")


def nearest_existing(path: Path) -> Path:
    """``path`` itself if it is an existing folder, else its nearest existing ancestor."""
    path = path.absolute()
    while not path.is_dir():
        path = path.parent
    return path
