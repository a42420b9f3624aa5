"""One build: plan → prepare → build each cell → write reports → publish.

Everything the user gave is checked before anything is written (exit 2). The build happens in
a temporary folder beside the output (or its nearest existing ancestor, so a bad input never
leaves the output's parents behind); only complete cells are moved into the output, under a
lock. A converter, evaluation, selftest or benchmark that crashes or hangs fails only its cell.
"""

from __future__ import annotations

import importlib.metadata
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from edgepack import __version__
from edgepack.importers import parse_model
from edgepack.pipeline.cache import BuildCache
from edgepack.pipeline.cells import CellContext, bench_cell, build_cell, build_record
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
    runnable = [p for p in planned if p.cell.status == "pending"]
    needs_calib = any(p.cell.precision == "int8" for p in runnable)
    cache = BuildCache(opts.cache) if opts.cache else None
    with tempfile.TemporaryDirectory(prefix=".edgepack-build-", dir=scratch) as tmp:
        work = Path(tmp)
        stage = work / "stage" / opts.name
        keys: dict[int, str] = {}
        record = None
        if cache is not None:
            say("looking up the build cache", None, 0, len(runnable))
            pkey = cache.prepare_key(opts, needs_calib)
            keys = {id(p): cache.cell_key(pkey, opts, p) for p in runnable}
            record = cache.load_prepare(pkey)
        if record is not None and all(cache.has_cell(k) for k in keys.values()):
            # everything is cached: no import, no reference run, no lowering
            cache.restore_prepare(pkey, stage)
            report = _report(opts, record["source"], record["data"], record["stages"],
                             record["notes"])
            ctx = CellContext(opts, None, work, stage, build_record())
        else:
            prepared = prepare(opts, needs_calib, work, stage,
                               lambda message: say(message, None, 0, len(runnable)))
            # every input is valid from here on: the rest can only fail cells, not the build
            report = new_report(opts, prepared)
            if cache is not None:
                cache.store_prepare(pkey, {"source": prepared.source, "data": prepared.data,
                                           "stages": prepared.stages,
                                           "notes": prepared.notes}, stage)
            ctx = CellContext(opts, prepared, work, stage, build_record())
        built = _build_cells(ctx, planned, runnable, say, cache, keys)
        report, out_dir = publish(stage, out_root, report, built, work / "trash")
    return BuildResult(report, built, out_dir)


def _check_remotes(opts: BuildOptions) -> None:
    from edgepack.remote import check_reachable, parse_remote

    for text in opts.remotes:
        check_reachable(parse_remote(text))


def _build_cells(ctx: CellContext, planned: list[PlannedCell], runnable: list[PlannedCell],
                 say: Progress, cache: BuildCache | None, keys: dict[int, str]) -> list[Cell]:
    """Build (or restore from the cache) every runnable cell. Cells of one profile and target
    are built in order, fp32 first (the others are timed against it); with ``--jobs N`` up to
    N such groups lower and verify at once, while every benchmark runs alone."""
    groups: dict[tuple[str, str], list[PlannedCell]] = {}
    for p in runnable:
        groups.setdefault((p.cell.profile, p.cell.target), []).append(p)
    done = [0]
    lock = threading.Lock()

    def run_group(group: list[PlannedCell]) -> None:
        baseline: Path | None = None
        for p in group:
            with lock:
                say(f"building {p.cell.key}", p.cell, done[0], len(runnable))
            key = keys.get(id(p))
            cached = cache.restore_cell(key, ctx.stage) if cache and key else None
            if cached is not None:
                restore(ctx, p, cached)
            else:
                build_cell(ctx, p, baseline)
                if cache is not None and key:
                    cache.store_cell(key, p.cell, ctx.stage)
            if p.cell.precision == "fp32" and not p.cell.variant and p.cell.status == "ok":
                baseline = ctx.stage / p.cell.bundle
            with lock:
                done[0] += 1
                say(f"{p.cell.key}: {p.cell.status}", p.cell, done[0], len(runnable))

    jobs = max(1, min(ctx.opts.jobs, len(groups)))
    if jobs == 1:
        for group in groups.values():
            run_group(group)
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for future in [pool.submit(run_group, g) for g in groups.values()]:
                future.result()
    choose_auto([p.cell for p in planned])
    return [p.cell for p in planned]


def restore(ctx: CellContext, p: PlannedCell, cached: Cell) -> None:
    """Fill the planned cell from its cache entry (files already in the stage)."""
    cell = p.cell
    notes = [n for n in cell.notes if n not in cached.notes]
    for name in cached.__dataclass_fields__:
        if name not in ("requested", "auto", "optional", "chosen"):
            setattr(cell, name, getattr(cached, name))
    cell.notes = [*notes, *cached.notes]
    cell.cached = {"built": cached.build.get("created"), "host": cached.build.get("host")}
    if ctx.opts.rebench and cell.status == "ok":
        bench = bench_cell(ctx, p, ctx.stage / cell.bundle,
                           ctx.stage / "logs" / f"{cell.profile}-{cell.name}.log")
        if isinstance(bench, str):
            cell.notes.append(f"--rebench: {bench}; the cached latency is kept")
        else:
            cell.latency, cell.memory = bench["latency"], bench["memory"]
            cell.cached["rebenchmarked"] = True


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
    return _report(opts, prepared.source, prepared.data, prepared.stages, list(prepared.notes))


def _report(opts: BuildOptions, source: dict, data: dict, stages: list[dict],
            notes: list[str]) -> Report:
    return Report(
        edgepack_version=__version__,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        source=source, host=host_info(), tools=tool_versions(),
        settings={"runs": opts.runs, "min_time": opts.min_time, "warmup": opts.warmup,
                  "threads": opts.threads, "calibration_method": opts.calibration_method,
                  "input_shapes": {k: list(v) for k, v in opts.input_shapes.items()},
                  "fixed_inputs": {k: list(v) for k, v in opts.fixed_inputs.items()},
                  "timeout": opts.timeout, "strategy": opts.strategy,
                  "target_options": dict(opts.target_options),
                  "bench_rounds": opts.bench_rounds, "jobs": opts.jobs,
                  "cache": str(opts.cache) if opts.cache else None,
                  "limits": [vars(x) for x in opts.limits]},
        data=data, stages=stages, notes=list(notes),
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
