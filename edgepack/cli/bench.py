from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from edgepack.cli.common import console

NAME = "bench"


def command(
    bundle: Annotated[Path, typer.Argument(help="A bundle directory or its .tar.gz archive.")],
    runs: Annotated[int | None, typer.Option(help="Timed runs.")] = None,
    min_time: Annotated[float | None, typer.Option(
        help="Time for at least this many seconds (default 1).")] = None,
    warmup: Annotated[int, typer.Option(help="Untimed warm-up runs.")] = 10,
    threads: Annotated[int | None, typer.Option(help="Threads (default: the bundle's).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds allowed for the benchmark.")] = 600.0,
    remote: Annotated[str | None, typer.Option(
        help="[user@]host[:port]: time it on that board over SSH, with its own Python.")
    ] = None,
) -> None:
    """Time a bundle here with its own run.py (a fresh process); print latency JSON."""
    from edgepack import procs, settings
    from edgepack.bundle import opened_bundle
    from edgepack.errors import UsageError

    if runs is not None and min_time is not None:
        raise UsageError("--runs and --min-time exclude each other: pass one")
    for key, value in (("runs", runs), ("min_time", min_time), ("warmup", warmup),
                       ("threads", threads), ("timeout", timeout)):
        if value is not None:
            settings.check(key, value, settings.SETTINGS[key].flag)
    args = ["--warmup", str(warmup)]
    args += ["--runs", str(runs)] if runs else []
    args += ["--min-time", str(min_time)] if min_time is not None else []
    args += ["--threads", str(threads)] if threads else []
    if remote is not None:
        from edgepack.remote import check_reachable, on_board, parse_remote

        board = parse_remote(remote)
        check_reachable(board)
        with opened_bundle(bundle) as folder:
            result = on_board(board, folder, timeout, bench=args, selftest=False)
        if "error" in result:
            console.print(f"[red]{result['error']}[/]", highlight=False)
            raise typer.Exit(1)
        print(json.dumps({**result["bench"], "board": result["identity"]}, indent=2))
        console.print(f"Measured on {board.name} ({result['identity']['model']}).")
        return
    with opened_bundle(bundle) as folder, tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "bench.json"
        done = procs.run([sys.executable, folder / "run.py", "bench", *args, "--json", result],
                         what="the benchmark", timeout=timeout, capture=True, cwd=folder)
        if not done.ok or not result.is_file():
            console.print(done.output.strip(), markup=False)
            console.print(f"[red]{done.reason or 'the benchmark wrote no result'}[/]")
            raise typer.Exit(1)
        print(result.read_text().strip())
    console.print("Measured on this host, not on the device the bundle was built for.")
