from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from edgepack.cli.common import console

NAME = "bench"


def command(
    bundle: Annotated[Path, typer.Argument(help="A bundle directory or its .tar.gz archive.")],
    runs: Annotated[int | None, typer.Option(min=1, help="Timed runs.")] = None,
    min_time: Annotated[float | None, typer.Option(
        min=0.0, help="Time for at least this many seconds (default 1).")] = None,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed warm-up runs.")] = 10,
    threads: Annotated[int | None, typer.Option(
        min=1, help="Threads (default: the bundle's).")] = None,
) -> None:
    """Time a bundle here with its own run.py (a fresh process); print latency JSON."""
    from edgepack.bundle import opened_bundle
    from edgepack.errors import EdgepackError

    if runs is not None and min_time is not None:
        raise EdgepackError("--runs and --min-time exclude each other: pass one")
    args = ["--warmup", str(warmup)]
    args += ["--runs", str(runs)] if runs else []
    args += ["--min-time", str(min_time)] if min_time is not None else []
    args += ["--threads", str(threads)] if threads else []
    with opened_bundle(bundle) as folder:
        proc = subprocess.run([sys.executable, str(folder / "run.py"), "bench", *args],
                              capture_output=True, text=True, cwd=folder)
    if proc.returncode != 0:
        console.print(proc.stderr.strip(), markup=False)
        raise typer.Exit(1)
    print(proc.stdout.strip())
    console.print("Measured on this host, not on the device the bundle was built for.")
