"""Build one cell of the matrix in steps that each return a frozen outcome:

1. ``attempts``: the target's strategies, lowered, given their bundle files and verified in
   order until one is accepted (the speed check of ``timing`` may still reject one);
2. ``timing``: the accepted bundle's benchmark;
3. ``devices``: the bundle on the profile's CPU under emulation and on boards;
4. release gates on latency, size and memory;

then :func:`finish`, the one place that writes the cell's record. A step that refuses a
verified bundle rejects the last attempt (its bundle kept under ``failed/``) and ends the
cell. Nothing here raises for a converter's or a runtime's faults.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from edgepack import speed
from edgepack.bundle import write_archive
from edgepack.gates import Gate, resource_gates
from edgepack.options import BuildOptions
from edgepack.pipeline.attempts import FAILED, Tried, reject_last, try_strategies
from edgepack.pipeline.bundling import CellPaths
from edgepack.pipeline.devices import Devices, on_devices
from edgepack.pipeline.plan import PlannedCell
from edgepack.pipeline.prepare import Prepared
from edgepack.pipeline.timing import (
    Bench,
    bench_cell,
    device_estimate,
    marginal_note,
    release_cost,
    speed_check,
    speed_required,
)
from edgepack.profiles import AccuracyBudget, DeviceProfile
from edgepack.report.model import Attempt, Cell, Status
from edgepack.report.records import DeviceEstimate
from edgepack.settings import Precision
from edgepack.speed import Decision

__all__ = ["FAILED", "CellContext", "build_cell", "budget_for", "build_record"]


@dataclass(frozen=True)
class CellContext:
    """What building any cell of one build needs."""

    opts: BuildOptions
    prepared: Prepared
    work: Path  # the build's work folder (scratch)
    stage: Path  # the model's output folder being assembled inside ``work``
    build: dict  # when/where this build ran, recorded in every cell
    # one benchmark at a time, whatever --jobs: timings must not disturb each other
    bench_lock: threading.Lock = field(default_factory=threading.Lock)
    say: Callable[[str], None] = field(default=lambda message: None)  # a step starts


@dataclass(frozen=True)
class Outcome:
    """What the steps of one cell returned, so far."""

    tried: Tried = Tried()
    bench: Bench | None = None
    devices: Devices | None = None
    device: DeviceEstimate | None = None  # the accepted bundle's device estimate (or why not)
    release_gates: tuple[Gate, ...] = ()
    size: int | None = None
    archive_sha256: str | None = None  # set only when the cell is shipped
    failure: str | None = None  # why a verified bundle was refused (or the cell not tried)


def budget_for(opts: BuildOptions, profile: DeviceProfile, cell: Cell,
               source_quantized: bool = False) -> AccuracyBudget:
    # a variant run at the device's default (16-bit) inference precision gets the fp16 budget;
    # a model that is already int8 gets the int8 budget at any precision
    precision = Precision.FP16 if cell.variant else cell.precision
    budget = profile.budget(Precision.INT8 if source_quantized else precision)
    if opts.max_accuracy_drop is not None:
        budget = replace(budget, max_top1_drop=opts.max_accuracy_drop)
    if opts.min_cosine is not None:
        budget = replace(budget, min_cosine=opts.min_cosine)
    return budget


def build_cell(ctx: CellContext, p: PlannedCell, baseline: Cell | None = None) -> Cell:
    """The cell's record, built. ``baseline`` is the built fp32 cell of the same profile and
    target, to time against."""
    paths = CellPaths.of(ctx.stage, ctx.work, p.cell)
    budget = budget_for(ctx.opts, p.profile, p.cell, ctx.prepared.quantized)
    wheels = None
    if ctx.opts.vendor_wheels:  # checked before any lowering: an uninstallable pin fails now
        from edgepack.wheels import vendor

        wheels = vendor(p.profile, p.target.requirements(p.profile), paths.log)
        if isinstance(wheels, str):
            return finish(ctx, p, paths, Outcome(failure=wheels))
    tried = try_strategies(ctx, p, paths, budget, wheels,
                           speed_check(ctx, p, baseline, paths, budget))
    o = Outcome(tried)
    if tried.accepted is None:
        return finish(ctx, p, paths, o)
    o = replace(o, bench=bench_cell(ctx, p, paths.bundle, paths.log, paths.scratch))
    if o.bench.failure:
        return finish(ctx, p, paths, reject(ctx, p, paths, o, o.bench.failure))
    o = replace(o, device=tried.attempts[-1].device or device_estimate(ctx, p, paths))
    o = replace(o, devices=on_devices(ctx, p, paths, budget, tried.accepted.boards))
    if o.devices.failure:  # verified on the host, not on the device: not shipped
        return finish(ctx, p, paths, reject(ctx, p, paths, o, o.devices.failure))
    o = replace(o, size=sum((paths.bundle / f).stat().st_size
                            for f in tried.accepted.lowered.files))
    c = p.cell
    cost = release_cost(o.bench.latency, o.bench.memory, o.device, o.devices.boards, o.size)
    o = replace(o, release_gates=tuple(resource_gates(
        ctx.opts.limits, c.profile, c.target, c.precision, cost)))
    missed = [g.describe() for g in o.release_gates if not g.ok]
    if missed:  # verified, but too slow, big or hungry for this release: not shipped
        reason = "release gate missed: " + "; ".join(missed)
        return finish(ctx, p, paths, reject(ctx, p, paths, o, reason))
    archive = paths.bundle.with_name(paths.bundle.name + ".tar.gz")
    return finish(ctx, p, paths, replace(o, archive_sha256=write_archive(paths.bundle, archive)))


def reject(ctx: CellContext, p: PlannedCell, paths: CellPaths, o: Outcome,
           reason: str) -> Outcome:
    """A later step refused the accepted bundle: its attempt is rejected, its bundle kept."""
    attempts = reject_last(ctx, p, paths, o.tried.attempts, reason)
    return replace(o, tried=replace(o.tried, attempts=attempts), failure=reason)


def finish(ctx: CellContext, p: PlannedCell, paths: CellPaths, o: Outcome) -> Cell:
    """The cell's record from its steps' outcomes: the one place that writes it."""
    bench, devices = o.bench, o.devices or Devices()
    benched = bench is not None and bench.failure is None
    shipped = o.archive_sha256 is not None
    # a declined cell shows the bundle its reason names (its fastest accurate one)
    best = fastest_refused(o.tried) if not shipped else None
    last = o.tried.closest if best and o.tried.closest and o.failure is None else o.tried.last
    decision = o.tried.attempts[-1].speed if benched else (best.speed if best else
                                                             _last_speed(o.tried))
    notes = [*p.cell.notes, *(last.lowered.notes if last else ())]
    if benched and marginal_note(decision):
        notes.append(marginal_note(decision))
    runtime = dict(last.runtime) if last else None
    if benched:
        runtime = {**(runtime or {}), "bench": bench.runtime}
    timings = {k: round(v, 3) for k, v in (("lower_s", o.tried.lower_s),
                                           ("verify_s", o.tried.verify_s),
                                           ("bench_s", bench.seconds if bench else 0.0)) if v}
    declined = not shipped and o.failure is None and declined_for_speed(o.tried)
    status = Status.OK if shipped else Status.DECLINED \
        if declined and not speed_required(ctx.opts) else Status.FAILED
    reason = None if shipped else (o.failure or (declined_reason(o.tried) if declined else
                                                 failure_reason(ctx, o.tried)))
    kept = ctx.stage / FAILED / p.cell.profile / p.cell.name
    if not shipped and kept.is_dir() and paths.log.is_file():
        shutil.copyfile(paths.log, kept / "log.txt")
    return replace(
        p.cell, status=status, reason=reason,
        device=o.device or (best.device if best and best.device else _last_device(o.tried)),
        attempts=tuple(o.tried.attempts), notes=tuple(notes), runtime=runtime,
        accuracy=last.accuracy if last else None,
        gates=(*(last.gates if last else ()), *_speed_gate(decision), *o.release_gates),
        latency=bench.latency if benched else None, memory=bench.memory if benched else None,
        speed=decision, emulated=devices.emulated, boards=devices.boards, size=o.size,
        bundle=str(paths.rel) if shipped else None,
        archive=f"{paths.rel}.tar.gz" if shipped else None, archive_sha256=o.archive_sha256,
        timings=timings, log=str(Path("logs") / paths.log.name), build=dict(ctx.build),
        failed_bundles=str(kept.relative_to(ctx.stage)) if not shipped and kept.is_dir()
        else None)


def declined_for_speed(tried: Tried) -> bool:
    """Whether some attempt met its accuracy budget and was refused only for its speed."""
    return bool(_refused(tried))


def _refused(tried: Tried) -> list[Attempt]:
    return [a for a in tried.attempts if a.speed is not None and a.speed.refused]


def fastest_refused(tried: Tried) -> Attempt | None:
    """The accurate attempt refused only for speed that came closest, or None."""
    refused = _refused(tried)
    return max(refused, key=lambda a: a.speed.speedup or 0.0) if refused else None


def declined_reason(tried: Tried) -> str:
    """Why an accurate cell is not shipped: its fastest accurate bundle, and against what."""
    refused, best = _refused(tried), fastest_refused(tried)
    s = best.speed
    return (f"accurate, but not shown faster than fp32 ({len(refused)} accurate bundle(s); "
            f"fastest: {best.strategy} on the {best.model} model, {s.speedup:.2f}× "
            f"({s.low:.2f}–{s.high:.2f}×, {s.verdict}) {s.source.words}; "
            f"needs >= {s.threshold:g}×)")


def _last_speed(tried: Tried) -> Decision | None:
    """The speed decision of the last attempt that had one (a comparison that was made)."""
    return next((a.speed for a in reversed(tried.attempts)
                 if a.speed is not None and a.speed.verdict != speed.NOT_COMPARED), None)


def _speed_gate(decision: Decision | None) -> list[Gate]:
    """The cell's speed decision as a gate."""
    if decision is None or decision.verdict == speed.NOT_COMPARED:
        return []
    return [Gate.of_speed(decision)]


def _last_device(tried: Tried) -> DeviceEstimate | None:
    return next((a.device for a in reversed(tried.attempts) if a.device), None)


def failure_reason(ctx: CellContext, tried: Tried) -> str:
    """Why no attempt was accepted, in one line, with the flag that may help."""
    done = [a for a in tried.attempts if a.outcome != "skipped"]
    if not done:
        reason = "no lowering strategy is available: " + "; ".join(
            f"{a.strategy}: {a.reason}" for a in tried.attempts)
    elif len(done) == 1:
        reason = done[0].reason or "rejected"
    else:
        names = ", ".join(dict.fromkeys(a.strategy for a in done))
        models = ", ".join(dict.fromkeys(a.model for a in done))
        reason = (f"all {len(done)} attempts rejected (strategies: {names}; prepared models: "
                  f"{models}); last: {done[-1].reason}")
        # the last attempt may have made no bundle (e.g. nothing to quantize): then the last
        # one that was measured says how close the cell came
        measured = [a for a in done if a.accuracy]
        if measured and not done[-1].accuracy:
            near = measured[-1]
            reason += f"; closest: {near.strategy} on the {near.model} model: {near.reason}"
    branching = [n for n in ctx.prepared.branch_inputs if n not in ctx.opts.fix_inputs]
    if branching and any(a.outcome == "rejected" for a in tried.attempts):
        flags = " ".join(f"--fix-input {n}=VALUE" for n in branching)
        reason += (f" (the model branches on input(s) {', '.join(branching)}: {flags} freezes "
                   "them so that the branches fold away)")
    return reason


def build_record() -> dict:
    """When, where and with which edgepack this build ran (stored in each cell it built)."""
    import platform

    from edgepack.version import __version__

    return {"created": datetime.now(UTC).isoformat(timespec="seconds"),
            "host": platform.node(), "edgepack_version": __version__}
