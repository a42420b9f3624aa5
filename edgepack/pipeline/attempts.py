"""The first step of a cell: try the target's strategies in order until one yields a bundle
that verifies. Each attempt lowers in a child process, gets the bundle's files, is evaluated
against the reference and runs its own selftest; the speed check (``timing``) may still reject
it. A rejected attempt's bundle is kept under ``failed/`` for inspection.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from edgepack.child import run_task
from edgepack.device import core
from edgepack.gates import Gate
from edgepack.pipeline.bundling import CellPaths, write_bundle_files
from edgepack.pipeline.plan import PlannedCell, target_options_for
from edgepack.pipeline.prepare import Prepared
from edgepack.profiles import AccuracyBudget
from edgepack.report.model import Attempt
from edgepack.report.records import BoardRun
from edgepack.targets.base import LowerContext, Lowered, Strategy
from edgepack.tasks import EvaluateSpec, LowerSpec
from edgepack.verify import accuracy_gates, compare_outputs, output_kinds, tolerance

FAILED = "failed"  # where rejected bundles are kept, under the model's output folder


@dataclass(frozen=True)
class Verified:
    """A lowered bundle and the numbers it reached (``boards``: its runs on the profile's
    boards, when the speed check took them)."""

    lowered: Lowered
    accuracy: dict
    gates: tuple[Gate, ...]
    runtime: dict
    passed: bool
    reason: str | None
    boards: tuple[BoardRun, ...] | None = None


@dataclass(frozen=True)
class Tried:
    """What the strategy loop came to: every attempt, the accepted bundle (if any) and the
    last one that was evaluated (whose numbers the cell shows when none was accepted)."""

    attempts: tuple[Attempt, ...] = ()
    accepted: Verified | None = None
    last: Verified | None = None
    lower_s: float = 0.0
    verify_s: float = 0.0
    # the fastest bundle that met its accuracy budget and was refused only for its speed: a
    # declined cell shows its numbers, the ones its reason speaks of
    closest: Verified | None = None


# (attempt, verified) -> the same, rejected when the bundle is not fast enough
SpeedCheck = Callable[[Attempt, Verified], tuple[Attempt, Verified]]


def try_strategies(ctx, p: PlannedCell, paths: CellPaths, budget: AccuracyBudget,
                   wheels: Path | None, speed_check: SpeedCheck) -> Tried:
    """Lower, verify and speed-check strategies in order; stop at the first accepted."""
    attempts = without_onnx(ctx.prepared, p)
    last, lower_s, verify_s = None, 0.0, 0.0
    closest, closest_speedup = None, -1.0
    tries = candidates(ctx.prepared, ctx.opts.fix_inputs, p)
    slow: set[str] = set()  # strategies refused only for speed: another model will not help
    for n, (label, model, strategy) in enumerate(tries, 1):
        if strategy.rewrites and not rewrites_apply(model, strategy.rewrites):
            continue  # nothing for this strategy's rewrites to change: not a new attempt
        if (strategy.kernels or strategy.name) in slow:
            attempts.append(Attempt(strategy.name, "skipped", model=label, reason=(
                "another strategy running the same kernels was accurate but not faster"
                if strategy.kernels else "accurate but not faster on the prepared model: a "
                "less prepared model lowers to the same kernels")))
            continue
        if strategy.unavailable:
            if not any(a.strategy == strategy.name for a in attempts):
                attempts.append(Attempt(strategy.name, "skipped", reason=strategy.unavailable,
                                        model=label))
            continue
        ctx.say(f"{p.cell.key}: attempt {n}/{len(tries)} {strategy.name} ({label} model)")
        attempt, verified, seconds = lower_and_verify(ctx, p, strategy, label, model, paths,
                                                      budget, wheels)
        lower_s, verify_s = lower_s + seconds[0], verify_s + seconds[1]
        if verified is not None and verified.passed:
            attempt, verified = speed_check(attempt, verified)
        last = verified or last
        if verified is not None and verified.passed:
            attempts.append(attempt)
            return Tried(tuple(attempts), verified, last, lower_s, verify_s, closest)
        if attempt.speed is not None and attempt.speed.refused:
            slow.add(strategy.kernels or strategy.name)
            if (attempt.speed.speedup or 0.0) > closest_speedup:
                closest, closest_speedup = verified, attempt.speed.speedup or 0.0
        kept = keep_rejected(ctx.stage, p.cell, paths.bundle, len(attempts) + 1,
                             strategy.name, label)
        attempts.append(replace(attempt, kept=kept))
    return Tried(tuple(attempts), None, last, lower_s, verify_s, closest)


def without_onnx(prepared: Prepared, p: PlannedCell) -> list[Attempt]:
    """The strategies that need the ONNX model, skipped with the exporter's reason when
    there is none."""
    why = prepared.onnx_failure
    if why is None:
        return []
    fmt = prepared.imported.source.format
    names = dict.fromkeys(s.name for s in p.strategies if fmt not in s.source_formats)
    return [Attempt(name, "skipped", reason=f"needs the ONNX model, and the ONNX export "
                    f"failed: {why}") for name in names]


def candidates(prepared: Prepared, fixed_inputs: dict, p: PlannedCell
               ) -> list[tuple[str, Path, Strategy]]:
    """(model label, model, strategy) in the order they are tried: native strategies on the
    user's source model first (not when inputs are fixed: only the prepared ONNX graph has
    them folded), then every other strategy on each prepared model (none when the ONNX
    export failed)."""
    imported = prepared.imported
    native = []
    if imported is not None and not fixed_inputs:
        model = prepared.models.get("prepared", imported.source.path)
        native = [("source", model, s) for s in p.strategies
                  if imported.source.format in s.source_formats]
    return native + [(label, model, s) for label, model in model_variants(prepared, p.target)
                     for s in p.strategies if not s.source_formats]


def model_variants(prepared: Prepared, target) -> list[tuple[str, Path]]:
    """The prepared models a target tries, in order: the fully prepared one (its standard-ops
    copy for targets that run only standard ops), then the minimally prepared one."""
    models = prepared.models
    if not models:
        return []
    first = "standard" if target.standard_ops_only and "standard" in models else "prepared"
    variants = [(first, models[first])]
    minimal = models.get("minimal")
    if minimal is not None and minimal.read_bytes() != models[first].read_bytes():
        variants.append(("minimal", minimal))
    return variants


def rewrites_apply(model: Path, rewrites: tuple[str, ...]) -> bool:
    import onnx

    from edgepack.stages.rewrites import all_apply

    return all_apply(onnx.load(str(model), load_external_data=False), rewrites)


def source_context(prepared: Prepared) -> dict:
    """What native strategies get: the source, its static I/O, files converters can read."""
    imported = prepared.imported
    if imported is None:
        return {}
    native = {k: v for k, v in imported.record.items() if k in ("saved_model",)}
    return {**imported.source.to_dict(), "inputs": [s.to_dict() for s in imported.inputs],
            "outputs": imported.outputs, "output_tensors": imported.source_outputs,
            "native": native}


def lower_and_verify(ctx, p: PlannedCell, strategy: Strategy, label: str, model: Path,
                     paths: CellPaths, budget: AccuracyBudget, wheels: Path | None
                     ) -> tuple[Attempt, Verified | None, tuple[float, float]]:
    """One attempt: a fresh bundle folder, the lowering, the bundle's files, verification.
    Returns the attempt record, what verification found, and (lower, verify) seconds."""
    shutil.rmtree(paths.bundle, ignore_errors=True)
    paths.bundle.mkdir(parents=True)
    lowered, attempt = _lower(ctx, p, strategy, label, model, paths, budget)
    if lowered is None:
        return attempt, None, (attempt.seconds or 0.0, 0.0)
    write_bundle_files(ctx, p, model, paths.bundle, lowered, budget, wheels)
    verified, verify_s = _verify(ctx, p, paths, lowered, budget)
    attempt = replace(attempt, accuracy=headline(verified.accuracy.get("outputs", {})),
                      outcome="accepted" if verified.passed else "rejected",
                      reason=None if verified.passed else verified.reason)
    return attempt, verified, (attempt.seconds or 0.0, verify_s)


def _lower(ctx, p: PlannedCell, strategy: Strategy, label: str, model: Path,
           paths: CellPaths, budget: AccuracyBudget) -> tuple[Lowered | None, Attempt]:
    cell, opts, prep = p.cell, ctx.opts, ctx.prepared
    context = LowerContext(
        strategy=strategy, variant=cell.variant, calibration_method=opts.calibration,
        timeout=opts.timeout, cache_dir=str(ctx.work / "cache" / cell.target),
        log=str(paths.log), options=target_options_for(opts, p.target),
        tolerance=tolerance(budget, kinds_of(prep, p)),
        source=source_context(prep) if strategy.source_formats
        else {})
    spec = LowerSpec(
        target=cell.target, model=str(model), precision=cell.precision,
        profile=p.profile.source, out_dir=str(paths.bundle),
        calib=str(prep.calib_file) if prep.calib_file else None,
        calib_kind=prep.calib.kind if prep.calib else None,
        calib_source=prep.calib.source if prep.calib else None, context=context.to_dict())
    res = run_task(spec, paths.scratch, paths.log, opts.timeout)
    attempt = Attempt(strategy.name, "rejected", model=label, seconds=round(res.seconds, 3),
                      peak_rss_bytes=res.peak_rss_bytes)
    if not res.ok:
        return None, replace(attempt, reason=f"lowering failed: {res.reason}")
    lowered = Lowered(**{k: v for k, v in res.result.items() if k != "peak_rss_bytes"})
    return lowered, replace(attempt, stats=dict(lowered.stats))


def _verify(ctx, p: PlannedCell, paths: CellPaths, lowered: Lowered,
            budget: AccuracyBudget) -> tuple[Verified, float]:
    """Evaluate the bundle on the evaluation data against the reference, then run its own
    selftest. Never raises for the bundle's faults."""
    from edgepack.bundle import check_bundle

    opts, prep = ctx.opts, ctx.prepared
    out = paths.scratch / "outputs.npz"
    spec = EvaluateSpec(str(paths.bundle), str(prep.eval_file), str(out),
                        opts.threads or p.profile.threads)
    res = run_task(spec, out.parent, paths.log, opts.timeout)
    if not res.ok:
        return Verified(lowered, {}, (), {}, False,
                        f"running the bundle failed: {res.reason}"), res.seconds
    outputs = core.unpack(core.load_npz(out), list(prep.reference_outputs))
    per_output = compare_outputs(prep.reference_outputs, outputs, prep.evaluation.labels,
                                 kinds_of(prep, p))
    gates = accuracy_gates(per_output, budget)
    passed, selftest_log = check_bundle(paths.bundle, timeout=opts.timeout)
    accuracy = {"data": prep.evaluation.kind, "samples": prep.evaluation.samples,
                "source": prep.evaluation.source, "in_sample": prep.data["in_sample"],
                "outputs": per_output, "budget": vars(budget),
                "selftest": selftest_log.splitlines()[-1:]}
    missed = [g.describe() for g in gates if not g.ok]
    if not passed:
        missed.append(f"device selftest failed: {(selftest_log.splitlines() or ['?'])[-1]}")
    reason = "accuracy outside budget: " + "; ".join(missed) if missed else None
    verified = Verified(lowered, accuracy, (*gates, selftest_gate(passed)),
                        res.result.get("runtime") or {}, not missed, reason)
    return verified, res.seconds


def kinds_of(prep: Prepared, p: PlannedCell) -> dict[str, tuple]:
    """How each output is compared on this cell's profile (verify.output_kinds)."""
    return output_kinds(prep.reference_outputs, p.profile.output_kinds)


def reject_last(ctx, p: PlannedCell, paths: CellPaths, attempts: tuple[Attempt, ...],
                reason: str) -> tuple[Attempt, ...]:
    """The attempts with the accepted one rejected after all (its bundle kept under
    failed/): it verified, but a later step refused it."""
    last = attempts[-1]
    kept = keep_rejected(ctx.stage, p.cell, paths.bundle, len(attempts), last.strategy,
                         last.model)
    return (*attempts[:-1], replace(last, outcome="rejected", reason=reason, kept=kept))


def keep_rejected(stage: Path, cell, bundle: Path, number: int, strategy: str,
                  model: str = "prepared") -> str | None:
    """Move a rejected attempt's bundle under failed/ so the user can see what was written."""
    if not bundle.is_dir() or not any(bundle.iterdir()):
        shutil.rmtree(bundle, ignore_errors=True)
        return None
    slug = re.sub(r"[^0-9A-Za-z.]+", "-", strategy).strip("-")
    if model != "prepared":
        slug += f"-{model}"
    dest = stage / FAILED / cell.profile / cell.name / f"{number}-{slug}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(dest, ignore_errors=True)
    bundle.rename(dest)
    return str(dest.relative_to(stage))


def selftest_gate(passed: bool) -> Gate:
    """The bundle's own selftest (``run.py selftest``) as a gate."""
    return Gate.check("selftest", float(passed), 1.0, "min")


def headline(per_output: dict) -> dict:
    """The per-output numbers a report shows (of everything compare_outputs measured)."""
    return {name: {k: m.get(k) for k in ("cosine", "rel_error", "max_abs", "match", "top1",
                                         "top1_reference", "top1_agreement", "kind",
                                         "map_iou", "step_agreement", "floor_rel_error")
                   if k in m}
            for name, m in per_output.items()}
