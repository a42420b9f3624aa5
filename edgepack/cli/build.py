from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated

import typer

from edgepack.cli.common import console, split_list, stdout

NAME = "build"


def _core_options(
    model: Annotated[Path, typer.Argument(
        help="The model: .onnx, .tflite, .keras/.h5, a SavedModel folder, a TorchScript .pt, "
        "an ExportedProgram .pt2, or a PyTorch entry point file.py:make_model.")],
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
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder.")] = Path("dist"),
    runs: Annotated[int | None, typer.Option(help="Timed runs per bundle.")] = None,
    min_time: Annotated[float | None, typer.Option(
        help="Time each bundle for at least this many seconds (default 1).")] = None,
    warmup: Annotated[int, typer.Option(help="Untimed warm-up runs.")] = 10,
    threads: Annotated[int | None, typer.Option(
        help="Threads for inference (default: the profile's).")] = None,
    max_accuracy_drop: Annotated[float | None, typer.Option(
        help="Max top-1 drop vs the reference, in points (overrides the profile).")] = None,
    min_cosine: Annotated[float | None, typer.Option(
        help="Min cosine similarity per output (overrides the profile).")] = None,
    min_speedup: Annotated[float | None, typer.Option(
        help="Min speedup of fp16/int8 cells over fp32, same profile and target (overrides "
        "the profile; 0 reports it without gating).")] = None,
    calibration: Annotated[str, typer.Option(
        help="Static int8 calibration: minmax, entropy or percentile.")] = "minmax",
    allow_synthetic_calibration: Annotated[bool, typer.Option(
        help="Allow static int8 calibrated on random data.")] = False,
    strategy: Annotated[str | None, typer.Option(
        help="Only try lowering strategies whose name contains this, e.g. a converter "
        "version (see report.json 'attempts').")] = None,
    timeout: Annotated[float, typer.Option(
        help="Seconds allowed for each lowering, evaluation, selftest or benchmark "
        "(at least 10).")] = 900.0,
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


def make_command():
    """The build command: the core options plus every target's own options."""
    from edgepack.targets import target_names

    base = inspect.signature(_core_options, eval_str=True)
    core_names = set(base.parameters)
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in base.parameters.values()]
    names = ", ".join(target_names())
    params = [p.replace(annotation=Annotated[list[str] | None, typer.Option(
        "--target", "-t", help=f"Targets (runtimes): {names} (default: the profile's "
        "runtimes).")]) if p.name == "target" else p for p in params]

    def command(**values) -> None:
        run({k: v for k, v in values.items() if k in core_names},
            {k: v for k, v in values.items() if k not in core_names})

    command.__signature__ = inspect.Signature(params + _target_parameters())
    command.__doc__ = _core_options.__doc__
    return command


def run(v: dict, target_values: dict) -> None:
    from rich.markup import escape

    from edgepack.importers.onnx import parse_fixed_inputs, parse_input_shapes
    from edgepack.pipeline import BuildOptions, build
    from edgepack.report.render import terminal_table, to_json

    opts = BuildOptions(
        model=v["model"], profiles=split_list(v["profile"]) or (),
        targets=split_list(v["target"]), precisions=split_list(v["precision"]),
        data=v["data"], calib=v["calib"], eval=v["eval_"],
        input_shapes=parse_input_shapes(v["input_shape"]),
        fixed_inputs=parse_fixed_inputs(v["fix_input"]), output=v["output"],
        weights=v["weights"], trust_pickle=v["trust_pickle"], emulate=v["emulate"],
        remotes=tuple(v["remote"] or ()), vendor_wheels=v["vendor_wheels"],
        runs=v["runs"], min_time=v["min_time"], warmup=v["warmup"], threads=v["threads"],
        max_accuracy_drop=v["max_accuracy_drop"], min_cosine=v["min_cosine"],
        min_speedup=v["min_speedup"],
        calibration_method=v["calibration"],
        allow_synthetic_calibration=v["allow_synthetic_calibration"], timeout=v["timeout"],
        target_options={k: val for k, val in target_values.items() if val not in (None, False)},
        strategy=v["strategy"],
    )
    with _progress_bar() as progress:
        result = build(opts, progress)
    report = result.report
    if v["as_json"]:
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
        mine = {c.key for c in result.built}
        others = sum(c.key not in mine for c in report.cells)
        if others:
            console.print(f"{others} more cell(s) from earlier builds are in the same folder "
                          "and its report.")
        for note in report.notes:
            console.print(f"[yellow]note:[/] {escape(note)}")
    console.print(f"Report: {result.out_dir / 'report.md'} (also report.json, report.html)")
    if not result.ok:
        raise typer.Exit(1)


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
