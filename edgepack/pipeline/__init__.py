"""One build: plan → prepare → build each cell → write reports → publish.

Everything the user gave is checked before anything is written (exit 2). The build happens in
a temporary folder beside the output (or its nearest existing ancestor, so a bad input never
leaves the output's parents behind); only complete cells are moved into the output, under a
lock. A converter, evaluation, selftest or benchmark that crashes or hangs fails only its cell.
"""

from __future__ import annotations

import importlib.metadata
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from edgepack import __version__
from edgepack.importers import parse_model
from edgepack.pipeline.cells import CellContext, build_cell, build_record
from edgepack.pipeline.options import BuildOptions, nearest_existing, validate
from edgepack.pipeline.plan import PlannedCell, plan
from edgepack.pipeline.prepare import Prepared, prepare
from edgepack.pipeline.publish import publish
from edgepack.report.model import Cell, Report, host_info
from edgepack.targets import all_targets

__all__ = ["BuildOptions", "BuildResult", "build", "plan", "tool_versions"]

# progress(message, cell or None, cells done, cells to build)
Progress = Callable[[str, Cell | None, int, int], None]
CORE_PACKAGES = ("numpy", "onnx", "onnxruntime", "onnxsim", "onnxslim")


@dataclass(frozen=True)
class BuildResult:
    report: Report  # every cell in the output folder (this build's and earlier ones)
    built: list[Cell]  # the cells of this build, in plan order
    out_dir: Path  # the model's output folder

    @property
    def ok(self) -> bool:
        """This build's verdict: no cell failed and at least one was built."""
        return not any(c.fails_build for c in self.built) and any(
            c.status == "ok" for c in self.built)


def build(opts: BuildOptions, progress: Progress | None = None) -> BuildResult:
    """Run a build. EdgepackError (exit 2) for bad input, before any output is written."""
    say = progress or (lambda message, cell, done, total: None)
    validate(opts)
    parse_model(opts.model, opts.weights, opts.trust_pickle)
    planned = plan(opts)
    _check_remotes(opts)
    out_root = opts.output.absolute()
    scratch = nearest_existing(out_root.parent)
    with tempfile.TemporaryDirectory(prefix=".edgepack-build-", dir=scratch) as tmp:
        work = Path(tmp)
        stage = work / "stage" / opts.name
        runnable = [p for p in planned if p.cell.status == "pending"]
        needs_calib = any(p.cell.precision == "int8" for p in runnable)
        prepared = prepare(opts, needs_calib, work, stage,
                           lambda message: say(message, None, 0, len(runnable)))
        # every input is valid from here on: the rest can only fail cells, not the build
        report = new_report(opts, prepared)
        built = _build_cells(opts, prepared, planned, runnable, work, stage, say)
        report, out_dir = publish(stage, out_root, report, built, work / "trash")
    return BuildResult(report, built, out_dir)


def _check_remotes(opts: BuildOptions) -> None:
    from edgepack.remote import check_reachable, parse_remote

    for text in opts.remotes:
        check_reachable(parse_remote(text))


def _build_cells(opts: BuildOptions, prepared: Prepared, planned: list[PlannedCell],
                 runnable: list[PlannedCell], work: Path, stage: Path,
                 say: Progress) -> list[Cell]:
    ctx = CellContext(opts, prepared, work, stage, build_record())
    baselines: dict[tuple[str, str], Path] = {}  # (profile, target) -> its fp32 bundle
    for done, p in enumerate(runnable):
        say(f"building {p.cell.key}", p.cell, done, len(runnable))
        key = (p.cell.profile, p.cell.target)
        cell = build_cell(ctx, p, baselines.get(key))
        if cell.precision == "fp32" and not cell.variant and cell.status == "ok":
            baselines[key] = stage / cell.bundle
        say(f"{p.cell.key}: {p.cell.status}", p.cell, done + 1, len(runnable))
    choose_auto([p.cell for p in planned])
    return [p.cell for p in planned]


def choose_auto(cells: list[Cell]) -> None:
    """For --precision auto: per profile and target, mark the fastest ok cell (speedup over
    fp32, timed interleaved; fp32 itself is 1.0) and say why it won."""
    groups: dict[tuple[str, str], list[Cell]] = {}
    for cell in cells:
        if cell.auto and not cell.variant:
            groups.setdefault((cell.profile, cell.target), []).append(cell)
    for group in groups.values():
        def speedup(c: Cell) -> float:
            return 1.0 if c.precision == "fp32" else (c.speed or {}).get("speedup") or 0.0

        ok = [c for c in group if c.status == "ok"]
        if not ok:
            continue
        best = max(ok, key=speedup)
        others = "; ".join(f"{c.precision} {speedup(c):.2f}×" if c.status == "ok" else
                           f"{c.precision} {c.status}" for c in group if c is not best)
        best.chosen = (f"fastest within budget: {speedup(best):.2f}× fp32's speed "
                       f"(others: {others})")
        for cell in group:
            cell.optional = cell is not best


def new_report(opts: BuildOptions, prepared: Prepared) -> Report:
    return Report(
        edgepack_version=__version__,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        source=prepared.source, host=host_info(), tools=tool_versions(),
        settings={"runs": opts.runs, "min_time": opts.min_time, "warmup": opts.warmup,
                  "threads": opts.threads, "calibration_method": opts.calibration_method,
                  "input_shapes": {k: list(v) for k, v in opts.input_shapes.items()},
                  "fixed_inputs": {k: list(v) for k, v in opts.fixed_inputs.items()},
                  "timeout": opts.timeout, "strategy": opts.strategy,
                  "target_options": dict(opts.target_options)},
        data=prepared.data, stages=prepared.stages, notes=list(prepared.notes),
    )


def tool_versions() -> dict[str, str]:
    """Versions of the core packages, every target's packages and installed toolchains."""
    packages = list(CORE_PACKAGES)
    targets = all_targets()
    for target in targets:
        packages += [p for p in target.packages if p not in packages]
    tools = {}
    for name in packages:
        try:
            tools[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    for target in targets:
        for chain in target.toolchains:
            if chain.installed():
                tools[f"toolchain {chain.name}"] = ", ".join(
                    f"{p} {chain.version(p)}" for p in chain.shown if chain.version(p))
    return tools
