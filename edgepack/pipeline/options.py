"""Checks of a whole BuildOptions before any work: ranges (edgepack.options), conflicts
between options, and the resources they name (emulator, boards, output folder)."""

from __future__ import annotations

import os
from pathlib import Path

from edgepack import settings
from edgepack.data import check_data_file, check_data_kinds
from edgepack.errors import DataError, ModelError, OutputError, UsageError
from edgepack.options import BuildOptions, check_ranges

__all__ = ["BuildOptions", "check_files", "check_output", "nearest_existing", "validate"]


def validate(opts: BuildOptions) -> None:
    """UsageError/OutputError for any value out of range or any conflict, before any work."""
    check_ranges(opts)
    if opts.runs is not None and opts.min_time is not None:
        raise UsageError("--runs and --min-time exclude each other: pass one")
    if opts.latency_percentile is not None and opts.max_latency_ms is None:
        raise UsageError("--latency-percentile / latency_percentile needs max_latency_ms")
    if opts.precisions is not None and not opts.precisions:
        raise UsageError("--precision names no precision; pass e.g. --precision fp32,int8")
    if opts.precisions and settings.AUTO in opts.precisions and len(opts.precisions) > 1:
        raise UsageError("--precision auto builds every precision: pass it alone")
    if opts.targets is not None and not opts.targets:
        raise UsageError("--target names no target; pass one or more target names (or leave "
                         "it out for the profile's runtimes)")
    if opts.cells is not None and not opts.cells:
        raise UsageError("--cell names no cell; pass PROFILE/TARGET[-PRECISION] (see: "
                         "edgepack plan)")
    if opts.strategy is not None and not opts.strategy.strip():
        raise UsageError("--strategy is empty; pass part of a strategy's name")
    from edgepack.emulation import SYSROOT

    for wanted, flag, missing in ((opts.emulate, "--emulate", SYSROOT.missing),
                                  (opts.device_estimate == "on", "--device-estimate on",
                                   SYSROOT.counter_missing)):
        if wanted and missing():
            raise UsageError(f"{flag}: {missing()}")
    check_files(opts)
    check_output(opts.output, opts.name)
    if opts.cache is not None and opts.cache.exists() and not opts.cache.is_dir():
        raise OutputError(f"--cache: {opts.cache} exists and is not a folder; pass a folder "
                          "(it is created if missing)")


def check_files(opts: BuildOptions) -> None:
    """Every data, weights, tokenizer and labels file the options name exists (``plan``
    reads none of them, and must still refuse what ``build`` would), and the data paths are
    of one kind that the preprocessing options given apply to."""
    paths = {role: Path(path) for role, path in (("--data", opts.data), ("--calib", opts.calib),
                                                 ("--eval", opts.eval)) if path is not None}
    for role, path in paths.items():
        check_data_file(path, role)
    if opts.weights is not None and not Path(opts.weights).is_file():
        raise ModelError(f"--weights {opts.weights} " + (
            "is not a file" if Path(opts.weights).exists() else "does not exist"))
    for flag, path in (("--tokenizer", opts.tokenizer), ("--labels", opts.labels)):
        if path is not None and not Path(path).is_file():
            raise DataError(f"{flag} {path} " + (
                "is not a file" if Path(path).exists() else "does not exist"))
    check_data_kinds(paths, opts.preprocessing, opts.labels, opts.tokenizer)


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
