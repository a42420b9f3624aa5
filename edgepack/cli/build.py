from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgepack.cli.common import console, split_list, stdout

NAME = "build"


def command(
    model: Annotated[Path, typer.Argument(help="The model file (.onnx).")],
    profile: Annotated[list[str] | None, typer.Option(
        "--profile", "-p", help="Device profile name or TOML path; repeatable or comma-separated "
        "(default: the host's kind, x86-64 or generic-arm64).")] = None,
    target: Annotated[list[str] | None, typer.Option(
        "--target", "-t",
        help="Runtimes: ort, openvino, tflite (default: the profile's runtimes).")] = None,
    precision: Annotated[list[str] | None, typer.Option(
        "--precision", help="fp32, fp16, int8-dynamic, int8 (default: the profile's).")] = None,
    data: Annotated[Path | None, typer.Option(
        help=".npz keyed by input name (+ optional 'labels') or .npy; calibration and eval.",
    )] = None,
    calib: Annotated[Path | None, typer.Option(help="Calibration data (overrides --data).")] = None,
    eval_: Annotated[Path | None, typer.Option(
        "--eval", help="Evaluation data (overrides --data).")] = None,
    input_shape: Annotated[list[str] | None, typer.Option(
        "--input-shape", help="Fix a dynamic input: NAME=1,3,224,224 (repeatable).")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder.")] = Path("dist"),
    runs: Annotated[int | None, typer.Option(min=1, help="Timed runs per bundle.")] = None,
    min_time: Annotated[float | None, typer.Option(
        min=0.0, help="Time each bundle for at least this many seconds (default 1).")] = None,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed warm-up runs.")] = 10,
    threads: Annotated[int | None, typer.Option(
        min=1, help="Threads for inference (default: the profile's).")] = None,
    max_accuracy_drop: Annotated[float | None, typer.Option(
        help="Max top-1 drop vs the reference, in points (overrides the profile).")] = None,
    min_cosine: Annotated[float | None, typer.Option(
        help="Min cosine similarity per output (overrides the profile).")] = None,
    calibration: Annotated[str, typer.Option(
        help="Static int8 calibration: minmax, entropy or percentile.")] = "minmax",
    allow_synthetic_calibration: Annotated[bool, typer.Option(
        help="Allow static int8 calibrated on random data.")] = False,
    preset: Annotated[str | None, typer.Option(
        help="openvino int8: NNCF preset, performance or mixed (default: mixed for "
        "transformers, else performance).")] = None,
    strategy: Annotated[str | None, typer.Option(
        help="Only try lowering strategies whose name contains this, e.g. "
        "'onnx2tf-1.29.24' (see report.json 'attempts').")] = None,
    int8_io: Annotated[bool, typer.Option(
        "--int8-io", help="tflite int8: integer inputs/outputs (scale/zero point in the "
        "manifest; run.py applies them).")] = False,
    timeout: Annotated[float, typer.Option(
        min=1.0, help="Seconds allowed for each lowering, evaluation or benchmark.")] = 900.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print report.json to stdout.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    """Build verified, benchmarked bundles of MODEL for device profiles and runtimes."""
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from edgepack.errors import EdgepackError
    from edgepack.importers.onnx import parse_input_shapes
    from edgepack.pipeline import BuildOptions, build
    from edgepack.report.render import terminal_table, to_json

    if runs is not None and min_time is not None:
        raise EdgepackError("--runs and --min-time exclude each other: pass one")
    if preset not in (None, "performance", "mixed"):
        raise EdgepackError(f"--preset must be performance or mixed, not '{preset}'")
    target_options = {k: v for k, v in (("int8_io", int8_io), ("preset", preset)) if v}
    opts = BuildOptions(
        model=model, profiles=split_list(profile) or (), targets=split_list(target),
        precisions=split_list(precision), data=data, calib=calib, eval=eval_,
        input_shapes=parse_input_shapes(input_shape), output=output, runs=runs,
        min_time=min_time, warmup=warmup, threads=threads, max_accuracy_drop=max_accuracy_drop,
        min_cosine=min_cosine, calibration_method=calibration,
        allow_synthetic_calibration=allow_synthetic_calibration, timeout=timeout,
        target_options=target_options, strategy=strategy,
    )
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("edgepack build", total=None)

        def progress(message, cell, done, total):
            bar.update(task, description=message, completed=done, total=total or None)
            if cell is not None and cell.status != "pending":
                mark = {"ok": "[green]ok[/]", "failed": "[red]FAILED[/]"}.get(cell.status,
                                                                             cell.status)
                bar.console.print(f"  {cell.key}: {mark}")

        report, out_dir = build(opts, progress)
    if as_json:
        stdout.print_json(to_json(report))
    else:
        console.print(terminal_table(report))
        host = report.host
        console.print(f"Latency and memory measured on this host ({host['cpu']}, "
                      f"{host['cpus']} CPUs), not on the device.")
        for cell in report.cells:
            if cell.status == "failed":
                console.print(f"[red]{cell.key} failed:[/] {escape(cell.reason or '')}")
    console.print(f"Report: {out_dir / 'report.md'} (also report.json, report.html)")
    if not report.ok:
        raise typer.Exit(1)
