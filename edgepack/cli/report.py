from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edgepack.cli.common import console

app = typer.Typer(help="Compare and merge build reports (CI release jobs).",
                  no_args_is_help=True)


@app.command("compare")
def compare(
    old: Annotated[Path, typer.Argument(help="The earlier report.json (or its folder).")],
    new: Annotated[Path, typer.Argument(help="The new report.json (or its folder).")],
    latency_threshold: Annotated[float, typer.Option(
        help="Relative p50 increase that is a regression, on top of the runs' own spread "
        "(p90 - p50).")] = 0.10,
    accuracy_threshold: Annotated[float, typer.Option(
        help="Drop of the lowest cosine that is a regression.")] = 0.001,
    top1_threshold: Annotated[float, typer.Option(
        help="Drop of top-1 accuracy, in points, that is a regression.")] = 0.5,
    size_threshold: Annotated[float, typer.Option(
        help="Relative size increase that is a regression.")] = 0.05,
    memory_threshold: Annotated[float, typer.Option(
        help="Relative peak-RSS increase that is a regression.")] = 0.10,
    cross_host: Annotated[bool, typer.Option(
        "--cross-host", help="Gate latency and memory even when the two builds ran on "
        "different machines.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")
    ] = False,
) -> None:
    """Per-cell deltas (latency, accuracy, size, memory, status) between two builds; exit 1 on
    a regression beyond the thresholds."""
    from edgepack import settings
    from edgepack.api import compare as run_compare

    for flag, value in (("--latency-threshold", latency_threshold),
                        ("--accuracy-threshold", accuracy_threshold),
                        ("--top1-threshold", top1_threshold),
                        ("--size-threshold", size_threshold),
                        ("--memory-threshold", memory_threshold)):
        settings.check("compare_threshold", value, flag)
    result = run_compare(old, new, latency_threshold=latency_threshold,
                         accuracy_threshold=accuracy_threshold, top1_threshold=top1_threshold,
                         size_threshold=size_threshold, memory_threshold=memory_threshold,
                         cross_host=cross_host)
    print(json.dumps(result.to_dict(), indent=2) if as_json else result.to_markdown(), end="")
    if result.regressions:
        raise typer.Exit(1)


@app.command("merge")
def merge(
    folders: Annotated[list[Path], typer.Argument(
        help="Output folders of edgepack build --cell jobs (each holds MODEL/report.json).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The merged output folder.")
    ] = Path("dist"),
    prefer: Annotated[Path | None, typer.Option(
        "--prefer", help="When two folders hold the same cell built differently, keep this "
        "folder's (else that is an error).", metavar="FOLDER")] = None,
) -> None:
    """Merge cell builds into one output folder: bundles, archives, one report, one
    SHA256SUMS. Exit 1 if a merged cell failed."""
    from edgepack.api import merge as run_merge

    reports = run_merge(folders, output, prefer)
    for report in reports:
        counts = {s: sum(c.status == s for c in report.cells)
                  for s in ("ok", "failed", "skipped", "declined")}
        console.print(f"{report.source['file']}: {len(report.cells)} cells "
                      f"({counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} "
                      f"skipped, {counts['declined']} declined) → "
                      f"{output / Path(report.source['file']).stem}/report.md")
    if not all(r.ok for r in reports):
        raise typer.Exit(1)
