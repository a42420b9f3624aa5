from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from edgepack.cli.common import console, stdout

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
    sha256: Annotated[str | None, typer.Option(
        "--sha256", help="The archive's known sha256 (default: the SHA256SUMS beside it).")
    ] = None,
    trust_unverified: Annotated[bool, typer.Option(
        "--trust-unverified", help="Run an archive that has no SHA256SUMS beside it and no "
        "--sha256: nothing then shows it is the archive edgepack built.")] = False,
) -> None:
    """Time a bundle here with its own run.py (a fresh process); print latency JSON. An
    archive is checked first, like verify does (SHA256SUMS or --sha256, then its files)."""
    from edgepack.bundle import opened_bundle

    args = _bench_args(runs, min_time, warmup, threads, timeout)
    board = None
    if remote is not None:
        from edgepack.remote import parse_remote

        board = parse_remote(remote)
    with opened_bundle(bundle, sha256, require_digest=not trust_unverified) as opened:
        if board is not None:
            result = _on_board(opened.folder, board, args, timeout)
            where = f"{board.name} ({result['board']['model']})"
        else:
            result, where = _here(opened.folder, args, timeout), None
    print(json.dumps(result, indent=2))
    console.print(f"Measured on {where}." if where else
                  "Measured on this host, not on the device the bundle was built for.",
                  highlight=False, markup=False)


def _bench_args(runs, min_time, warmup, threads, timeout) -> list[str]:
    """run.py's bench arguments, every value checked against its range."""
    from edgepack import settings
    from edgepack.errors import UsageError

    if runs is not None and min_time is not None:
        raise UsageError("--runs and --min-time exclude each other: pass one")
    for key, value in (("runs", runs), ("min_time", min_time), ("warmup", warmup),
                       ("threads", threads), ("timeout", timeout)):
        if value is not None:
            settings.check(key, value, "--" + key.replace("_", "-"))
    args = ["--warmup", str(warmup)]
    args += ["--runs", str(runs)] if runs else []
    args += ["--min-time", str(min_time)] if min_time is not None else []
    args += ["--threads", str(threads)] if threads else []
    return args


def _on_board(folder: Path, board, args: list[str], timeout: float) -> dict:
    from edgepack.errors import CheckFailed
    from edgepack.remote import check_reachable, on_board

    check_reachable(board)
    result = on_board(board, folder, timeout, bench=args, selftest=False)
    if "error" in result:
        raise CheckFailed(result["error"])
    return {**result["bench"], "board": result["identity"]}


def _here(folder: Path, args: list[str], timeout: float) -> dict:
    """The bundle's own ``run.py bench`` in a fresh process (after the gate). Its output goes
    to stdout when it fails; the one error line to stderr."""
    from edgepack import procs
    from edgepack.errors import CheckFailed

    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "bench.json"
        done = procs.run([sys.executable, folder / "run.py", "bench", *args, "--json", result],
                         what="the benchmark", timeout=timeout, capture=True, cwd=folder)
        if done.ok and result.is_file():
            return json.loads(result.read_text())
    stdout.print(done.output.strip(), markup=False, highlight=False)
    last = done.last_line()
    raise CheckFailed(f"{done.reason or 'the benchmark wrote no result'}"
                      + (f": {last}" if last else ""))
