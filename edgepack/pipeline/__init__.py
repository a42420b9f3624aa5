"""One build: plan → prepare → build each cell → write reports → publish.

Everything the user gave is checked before anything is written (exit 2). The build happens in
a temporary folder beside the output (or its nearest existing ancestor, so a bad input never
leaves the output's parents behind); only complete cells are moved into the output, under a
lock. A converter, evaluation, selftest or benchmark that crashes or hangs fails only its cell.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from edgepack.importers import parse_model
from edgepack.options import report_settings
from edgepack.pipeline.bundling import CellPaths
from edgepack.pipeline.cache import BuildCache
from edgepack.pipeline.cells import CellContext, build_cell, build_record
from edgepack.pipeline.options import BuildOptions, nearest_existing, validate
from edgepack.pipeline.plan import (
    PlannedCell,
    needs_calibration,
    plan,
    plan_all,
    select_cells,
)
from edgepack.pipeline.prepare import Prepared, prepare
from edgepack.pipeline.publish import publish
from edgepack.pipeline.timing import bench_cell, choose_auto
from edgepack.pipeline.tools import tool_versions
from edgepack.report.model import Cell, Report, Status, host_info
from edgepack.report.records import Cached
from edgepack.settings import Precision
from edgepack.version import __version__

__all__ = ["BuildOptions", "BuildResult", "build", "plan", "tool_versions"]

# progress(message, cell or None, cells done, cells to build)
Progress = Callable[[str, Cell | None, int, int], None]


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

    def step(message: str) -> None:  # a step of a cell starts (no change in the counts)
        say(message, None, None, None)

    validate(opts)
    source = parse_model(opts.model, opts.weights, opts.trust_pickle)  # the one parse
    matrix = plan_all(opts)
    planned = select_cells(opts.cells, matrix)
    _check_remotes(opts, planned)
    out_root = opts.output.absolute()
    scratch = nearest_existing(out_root.parent)
    runnable = [p for p in planned if p.cell.status == Status.PENDING]
    needs_calib = needs_calibration(matrix)  # the whole matrix's: --cell parts agree
    cache = BuildCache(opts.cache) if opts.cache else None
    with tempfile.TemporaryDirectory(prefix=".edgepack-build-", dir=scratch) as tmp:
        work = Path(tmp)
        stage = work / "stage" / opts.name
        keys: dict[int, str] = {}
        record = None
        if cache is not None:
            say("looking up the build cache", None, 0, len(runnable))
            pkey = cache.prepare_key(opts, source, needs_calib)
            keys = {id(p): cache.cell_key(pkey, opts, p) for p in runnable}
            record = cache.load_prepare(pkey)
        if record is not None and all(cache.has_cell(k) for k in keys.values()):
            # everything is cached: no import, no reference run, no lowering
            cache.restore_prepare(pkey, stage)
            report = _report(opts, record["source"], record["data"], record["stages"],
                             record["notes"])
            ctx = CellContext(opts, None, work, stage, build_record(), say=step)
        else:
            prepared = prepare(opts, needs_calib, work, stage,
                               lambda message: say(message, None, 0, len(runnable)), source)
            # every input is valid from here on: the rest can only fail cells, not the build
            report = new_report(opts, prepared)
            if cache is not None:
                cache.store_prepare(pkey, {"source": prepared.source, "data": prepared.data,
                                           "stages": prepared.stages,
                                           "notes": prepared.notes}, stage)
            ctx = CellContext(opts, prepared, work, stage, build_record(), say=step)
        report = replace(report, notes=(*report.notes, *oversubscribed(opts, runnable)))
        built = _build_cells(ctx, planned, runnable, say, cache, keys)
        report, out_dir = publish(stage, out_root, report, built, work / "trash")
    return BuildResult(report, built, out_dir)


def oversubscribed(opts: BuildOptions, runnable: list[PlannedCell]) -> list[str]:
    """A warning for each profile that times more threads than this host has CPUs."""
    import os

    cpus = os.cpu_count() or 1
    notes = []
    for profile in {p.profile.name: p.profile for p in runnable}.values():
        threads = opts.threads or profile.threads
        if threads > cpus:
            notes.append(f"profile {profile.name} runs {threads} inference threads and this "
                         f"host has {cpus} CPUs: its host timings are oversubscribed (p90/p99 "
                         "suffer most); device estimates count one thread and scale it to "
                         f"{threads}, so they are not affected")
    return notes


def _check_remotes(opts: BuildOptions, planned: list[PlannedCell]) -> None:
    """Every board reachable, and with the CPU features of the profiles it serves."""
    from edgepack.remote import check_board

    profiles = {p.profile.name: p.profile for p in planned}
    for remote in opts.remotes:
        check_board(remote, [p for name, p in profiles.items()
                             if remote.profile in (None, name)])


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
    built: dict[int, Cell] = {}  # planned cell (id) -> its record, built or restored

    def run_group(group: list[PlannedCell]) -> None:
        baseline: Cell | None = None
        for p in group:
            with lock:
                say(f"building {p.cell.key}", p.cell, done[0], len(runnable))
            key = keys.get(id(p))
            cached = cache.restore_cell(key, ctx.stage) if cache and key else None
            if cached is not None:
                cell = restore(ctx, p, cached)
            else:
                cell = build_cell(ctx, p, baseline)
                if cache is not None and key:
                    cache.store_cell(key, cell, ctx.stage)
            if cell.precision == Precision.FP32 and not cell.variant and \
                    cell.status == Status.OK:
                baseline = cell
            with lock:
                built[id(p)] = cell
                done[0] += 1
                say(f"{cell.key}: {cell.status}", cell, done[0], len(runnable))

    jobs = max(1, min(ctx.opts.jobs, len(groups)))
    if jobs == 1:
        for group in groups.values():
            run_group(group)
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for future in [pool.submit(run_group, g) for g in groups.values()]:
                future.result()
    return choose_auto([built.get(id(p), p.cell) for p in planned])


def restore(ctx: CellContext, p: PlannedCell, cached: Cell) -> Cell:
    """The planned cell's record from its cache entry (files already in the stage)."""
    planned = p.cell
    notes = [n for n in planned.notes if n not in cached.notes]
    cell = replace(cached, requested=planned.requested, auto=planned.auto,
                   optional=planned.optional, chosen=planned.chosen,
                   notes=(*notes, *cached.notes),
                   cached=Cached(cached.build.get("created"), cached.build.get("host")))
    if not ctx.opts.rebench or cell.status != Status.OK:
        return cell
    paths = CellPaths.of(ctx.stage, ctx.work, cell)
    bench = bench_cell(ctx, p, ctx.stage / cell.bundle, paths.log, paths.scratch)
    if bench.failure:
        return cell.noted(f"--rebench: {bench.failure}; the cached latency is kept")
    return replace(cell, latency=bench.latency, memory=bench.memory,
                   cached=replace(cell.cached, rebenchmarked=True))


def new_report(opts: BuildOptions, prepared: Prepared) -> Report:
    return _report(opts, prepared.source, prepared.data, prepared.stages, list(prepared.notes))


def _report(opts: BuildOptions, source: dict, data: dict, stages: list[dict],
            notes: list[str]) -> Report:
    return Report(
        edgepack_version=__version__,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        source=source, host=host_info(), tools=tool_versions(),
        settings=report_settings(opts),
        data=data, stages=tuple(stages), notes=tuple(notes),
    )
