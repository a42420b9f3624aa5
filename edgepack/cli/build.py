from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Annotated

import typer

from edgepack.cli.common import console, split_list, stdout

NAME = "build"


def _core_options(
    model: Annotated[Path | None, typer.Argument(
        help="The model: .onnx, .tflite, .keras/.h5, a SavedModel folder, a TorchScript .pt, "
        "an ExportedProgram .pt2, or a PyTorch entry point file.py:make_model (default: the "
        "models of ./edgepack.toml or pyproject.toml's [tool.edgepack]).")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="A config file (edgepack.toml, or a pyproject.toml with "
        "[tool.edgepack]); flags override its values.")] = None,
    cell: Annotated[list[str] | None, typer.Option(
        "--cell", help="Build only this cell of the plan: PROFILE/TARGET (all its precisions) "
        "or PROFILE/TARGET-PRECISION, prefixed MODEL/ with several models; repeatable "
        "(see: edgepack plan).")] = None,
    profile: Annotated[list[str] | None, typer.Option(
        "--profile", "-p", help="Device profile name or TOML path; repeatable or comma-separated "
        "(default: the host's kind, x86-64 or generic-arm64).")] = None,
    target: Annotated[list[str] | None, typer.Option(
        "--target", "-t", help="Targets (runtimes) to build (default: the profile's "
        "runtimes).")] = None,
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
    weights: Annotated[Path | None, typer.Option(
        help="PyTorch entry point: a state dict to load (weights_only=True).")] = None,
    trust_pickle: Annotated[bool, typer.Option(
        "--trust-pickle", help="Load a pickled PyTorch model (torch.load without "
        "weights_only): this RUNS ARBITRARY CODE from the file; only for files you trust.")
    ] = False,
    remote: Annotated[list[str] | None, typer.Option(
        "--remote", help="[PROFILE=][user@]host[:port]: also run each bundle (selftest, "
        "evaluation, bench) on a board over SSH; repeatable, boards run in parallel.")
    ] = None,
    emulate: Annotated[bool, typer.Option(
        "--emulate", help="Also verify aarch64 profiles' bundles on their CPU under qemu "
        "(accuracy only; needs: edgepack toolchain install emulator).")] = False,
    vendor_wheels: Annotated[bool, typer.Option(
        "--vendor-wheels", help="Put the wheels of each bundle's requirements.txt, for the "
        "profile's platform and Python, into the bundle (offline install on the device); "
        "fails a cell whose pins have no wheel for the profile.")] = False,
    fix_input: Annotated[list[str] | None, typer.Option(
        "--fix-input", help="Freeze an input to a constant, NAME=VALUE[,VALUE...] (repeatable): "
        "it leaves the bundles, and control flow on it folds away.")] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Output folder (default: dist).")] = None,
    runs: Annotated[int | None, typer.Option(help="Timed runs per bundle.")] = None,
    min_time: Annotated[float | None, typer.Option(
        help="Time each bundle for at least this many seconds (default 1).")] = None,
    warmup: Annotated[int | None, typer.Option(
        help="Untimed warm-up runs (default 10).")] = None,
    jobs: Annotated[int | None, typer.Option(
        "--jobs", "-j", help="Lower and verify this many profile/target groups at once "
        "(default 1); benchmarks always run one at a time.")] = None,
    cache: Annotated[Path | None, typer.Option(
        "--cache", help="A build cache folder: cells whose model, data, settings and tools "
        "are unchanged are restored from it instead of rebuilt.")] = None,
    rebench: Annotated[bool, typer.Option(
        "--rebench", help="Time cells restored from the cache again (else their cached "
        "latency is reported, marked as such).")] = False,
    bench_rounds: Annotated[int | None, typer.Option(
        help="Benchmark each bundle in this many fresh processes (default 1); the median "
        "round is reported, and report compare uses their spread as the noise.")] = None,
    threads: Annotated[int | None, typer.Option(
        help="Threads for inference (default: the profile's).")] = None,
    max_accuracy_drop: Annotated[float | None, typer.Option(
        help="Max top-1 drop vs the reference, in points (overrides the profile).")] = None,
    min_cosine: Annotated[float | None, typer.Option(
        help="Min cosine similarity per output (overrides the profile).")] = None,
    min_speedup: Annotated[float | None, typer.Option(
        help="Min speedup of fp16/int8 cells over fp32, same profile and target (overrides "
        "the profile; 0 reports it without gating).")] = None,
    calibration: Annotated[str | None, typer.Option(
        help="Static int8 calibration: minmax (default), entropy or percentile.")] = None,
    allow_synthetic_calibration: Annotated[bool, typer.Option(
        help="Allow static int8 calibrated on random data.")] = False,
    strategy: Annotated[str | None, typer.Option(
        help="Only try lowering strategies whose name contains this, e.g. a converter "
        "version (see report.json 'attempts').")] = None,
    timeout: Annotated[float | None, typer.Option(
        help="Seconds allowed for each lowering, evaluation, selftest or benchmark "
        "(at least 10; default 900).")] = None,
    max_latency_ms: Annotated[float | None, typer.Option(
        help="Release gate: fail a cell whose latency (--latency-percentile, default p50) "
        "exceeds this.")] = None,
    latency_percentile: Annotated[str | None, typer.Option(
        help="The latency --max-latency-ms gates: p50, p90, p99, mean or max.")] = None,
    max_size_mb: Annotated[float | None, typer.Option(
        help="Release gate: fail a cell whose model files exceed this many MiB.")] = None,
    max_peak_rss_mb: Annotated[float | None, typer.Option(
        help="Release gate: fail a cell whose benchmark peak RSS exceeds this many MiB.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print report.json to stdout.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    """Build verified, benchmarked bundles of MODEL for device profiles and runtimes."""


def _target_parameters() -> list[inspect.Parameter]:
    """One keyword parameter per target option (each target declares its own flags)."""
    from edgepack.targets import all_targets

    params, seen = [], {}
    for target in all_targets():
        for option in target.options:
            if option.name in seen:  # several targets may share one option (same flag)
                if seen[option.name] != option.flag:
                    raise RuntimeError(f"targets declare option '{option.name}' with two flags: "
                                       f"{seen[option.name]} and {option.flag}")
                continue
            seen[option.name] = option.flag
            kind = bool if option.type is bool else (option.type | None)
            params.append(inspect.Parameter(
                option.name, inspect.Parameter.KEYWORD_ONLY,
                default=False if option.type is bool else None,
                annotation=Annotated[kind, typer.Option(option.flag, help=option.help)]))
    return params


def make_command(plan_only: bool = False):
    """The build (or plan) command: the core options plus every target's own options."""
    from edgepack.targets import target_names

    base = inspect.signature(_core_options, eval_str=True)
    core_names = set(base.parameters)
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in base.parameters.values()]
    names = ", ".join(target_names())
    params = [p.replace(annotation=Annotated[list[str] | None, typer.Option(
        "--target", "-t", help=f"Targets (runtimes): {names} (default: the profile's "
        "runtimes).")]) if p.name == "target" else p for p in params]
    if plan_only:
        params = [p for p in params if p.name not in ("as_json",)]

    def command(**values) -> None:
        core = {k: v for k, v in values.items() if k in core_names}
        targets = {k: v for k, v in values.items() if k not in core_names}
        (run_plan if plan_only else run)(core, targets)

    command.__signature__ = inspect.Signature(params + _target_parameters())
    command.__doc__ = (PLAN_DOC if plan_only else _core_options.__doc__)
    return command


PLAN_DOC = ("Print the build matrix as JSON for a CI matrix: one entry per profile and "
            "target (build each with edgepack build --cell ID; merge with edgepack report "
            "merge).")


def flag_values(v: dict, target_values: dict) -> dict:
    """The flags the user gave, as config keys (None: not given)."""
    from edgepack.importers.onnx import parse_fixed_inputs, parse_input_shapes

    return {
        "model": v["model"], "profiles": split_list(v["profile"]),
        "targets": split_list(v["target"]), "precisions": split_list(v["precision"]),
        "data": v["data"], "calib": v["calib"], "eval": v["eval_"],
        "input_shapes": parse_input_shapes(v["input_shape"]) or None,
        "fix_inputs": parse_fixed_inputs(v["fix_input"]) or None,
        "weights": v["weights"], "trust_pickle": v["trust_pickle"], "emulate": v["emulate"],
        "remotes": tuple(v["remote"]) if v["remote"] else None,
        "vendor_wheels": v["vendor_wheels"], "output": v["output"], "runs": v["runs"],
        "min_time": v["min_time"], "warmup": v["warmup"], "threads": v["threads"],
        "bench_rounds": v["bench_rounds"], "jobs": v["jobs"], "cache": v["cache"],
        "rebench": v["rebench"],
        "max_accuracy_drop": v["max_accuracy_drop"], "min_cosine": v["min_cosine"],
        "min_speedup": v["min_speedup"], "calibration": v["calibration"],
        "allow_synthetic_calibration": v["allow_synthetic_calibration"],
        "strategy": v["strategy"], "timeout": v["timeout"],
        "max_latency_ms": v["max_latency_ms"], "latency_percentile": v["latency_percentile"],
        "max_size_mb": v["max_size_mb"], "max_peak_rss_mb": v["max_peak_rss_mb"],
        "target_options": {k: val for k, val in target_values.items()
                           if val not in (None, False)} or None,
        "cells": split_list(v["cell"]),
    }


def run(v: dict, target_values: dict) -> None:
    from edgepack.api import options_list
    from edgepack.pipeline import build

    ok = True
    for opts in options_list(flag_values(v, target_values), v["config"]):
        with _progress_bar() as progress:
            result = build(opts, progress)
        ok &= result.ok
        show(result, v["as_json"])
    if not ok:
        raise typer.Exit(1)


def run_plan(v: dict, target_values: dict) -> None:
    from edgepack.api import plan

    stdout.print_json(json.dumps(plan(flag_values(v, target_values), v["config"])))


def show(result, as_json: bool) -> None:
    from rich.markup import escape

    from edgepack.report.render import terminal_table, to_json

    report = result.report
    if as_json:
        stdout.print_json(to_json(report))
    else:
        console.print(terminal_table(report, result.built))
        host = report.host
        boards = any(c.boards for c in result.built)
        console.print(f"Latency and memory measured on this host ({host['cpu']}, "
                      f"{host['cpus']} CPUs), "
                      + ("except the ↳ rows: those are the named board's own."
                         if boards else "not on the device."))
        for cell in result.built:
            if cell.status in ("failed", "skipped"):
                color = "red" if cell.status == "failed" else "yellow"
                console.print(f"[{color}]{escape(cell.key)} {cell.status}:[/] "
                              f"{escape(cell.reason or '')}")
        cached = [c for c in result.built if c.cached]
        if cached:
            retimed = all(c.cached.get("rebenchmarked") for c in cached)
            console.print(f"{len(cached)} cell(s) restored from the build cache; "
                          + ("re-timed now." if retimed else "their latency and memory are "
                             "from the build that made them (--rebench times them again)."))
        mine = {c.key for c in result.built}
        others = sum(c.key not in mine for c in report.cells)
        if others:
            console.print(f"{others} more cell(s) from earlier builds are in the same folder "
                          "and its report.")
        for note in report.notes:
            console.print(f"[yellow]note:[/] {escape(note)}")
    console.print(f"Report: {result.out_dir / 'report.md'} (also report.json, report.html, "
                  "junit.xml)")


class _progress_bar:  # noqa: N801 - a context manager
    """Progress over the build's cells, yielding the pipeline's callback: a transient bar on a
    terminal; plain lines (one per finished cell) in CI logs and pipes."""

    def __enter__(self):
        from rich.markup import escape

        self.bar = None
        if console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                                transient=True)
            self.bar.__enter__()
            self.task = self.bar.add_task("edgepack build", total=None)

        def progress(message, cell, done, total):
            if self.bar is not None:
                self.bar.update(self.task, description=escape(message), completed=done,
                                total=total or None)
            if cell is not None and cell.status != "pending":
                mark = {"ok": "[green]ok[/]", "failed": "[red]FAILED[/]"}.get(cell.status,
                                                                             cell.status)
                console.print(f"  {escape(cell.key)}: {mark}")

        return progress

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
