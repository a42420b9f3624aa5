"""Build one cell: try the target's strategies in order until one yields a bundle that
verifies, then benchmark and archive it. Each step runs in a child process; each attempt is a
returned record, and a rejected attempt's bundle is kept under ``failed/`` for inspection.
"""

from __future__ import annotations

import platform
import re
import shutil
import threading
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from edgepack.artifact import sha256_file
from edgepack.bundle import check_bundle, write_archive, write_bundle
from edgepack.child import run_task
from edgepack.device import core
from edgepack.gates import describe, resource_gates
from edgepack.pipeline.options import BuildOptions
from edgepack.pipeline.plan import PlannedCell, target_options_for
from edgepack.pipeline.prepare import Prepared
from edgepack.profiles import AccuracyBudget, DeviceProfile
from edgepack.report.model import Attempt, Cell
from edgepack.targets.base import LowerContext, Lowered, Strategy
from edgepack.tasks import BenchSpec, EvaluateSpec, LowerSpec
from edgepack.verify import accuracy_gates, compare_outputs, tolerance

GOLDEN_SAMPLES = 8  # golden samples shipped in each bundle for its selftest ...
GOLDEN_BYTES = 1 << 20  # ... as long as their inputs fit in this (at least one sample)
FAILED = "failed"  # where rejected bundles are kept, under the model's output folder


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


@dataclass(frozen=True)
class Verified:
    """A lowered bundle and the numbers it reached."""

    lowered: Lowered
    accuracy: dict
    gates: list[dict]
    runtime: dict
    passed: bool
    reason: str | None


def budget_for(opts: BuildOptions, profile: DeviceProfile, cell: Cell,
               source_quantized: bool = False) -> AccuracyBudget:
    # a variant run at the device's default (16-bit) inference precision gets the fp16 budget;
    # a model that is already int8 gets the int8 budget at any precision
    precision = "fp16" if cell.variant else cell.precision
    budget = profile.budget("int8" if source_quantized else precision)
    if opts.max_accuracy_drop is not None:
        budget = replace(budget, max_top1_drop=opts.max_accuracy_drop)
    if opts.min_cosine is not None:
        budget = replace(budget, min_cosine=opts.min_cosine)
    return budget


def speed_gate(opts: BuildOptions, profile: DeviceProfile, cell: Cell) -> float | None:
    """The speedup over fp32 this cell must reach (0: reported only; None: not compared)."""
    if cell.precision == "fp32":
        return 0.0 if cell.variant else None  # a device-default variant: reported only
    if opts.min_speedup is not None:
        return opts.min_speedup
    return profile.min_speedup(cell.precision)


def build_cell(ctx: CellContext, p: PlannedCell, baseline: Path | None = None) -> Cell:
    """Fill ``p.cell`` with the outcome; never raises for a converter's or runtime's faults.
    ``baseline`` is the fp32 bundle of the same profile and target, to time against."""
    cell = p.cell
    rel = Path(cell.profile) / cell.name
    bundle = ctx.stage / rel
    log = ctx.stage / "logs" / f"{cell.profile}-{cell.name}.log"
    cell.log, cell.build = str(Path("logs") / log.name), dict(ctx.build)
    budget = budget_for(ctx.opts, p.profile, cell, ctx.prepared.quantized)
    accepted, last, planned_notes = None, None, list(cell.notes)
    wheels = None
    if ctx.opts.vendor_wheels:  # checked before any lowering: an uninstallable pin fails now
        from edgepack.wheels import vendor

        wheels = vendor(p.profile, p.target.requirements(p.profile), log)
        if isinstance(wheels, str):
            cell.status, cell.reason = "failed", wheels
            return _failed(ctx, cell, log)
    tries = native_tries(ctx, p) + [
        (label, model, s) for label, model in model_variants(ctx.prepared, p.target)
        for s in p.strategies if not s.source_formats]
    for label, model, strategy in tries:
        if strategy.rewrites and not rewrites_apply(model, strategy.rewrites):
            continue  # nothing for this strategy's rewrites to change: not a new attempt
        if strategy.unavailable:
            if not any(a.strategy == strategy.name for a in cell.attempts):
                cell.attempts.append(Attempt(strategy.name, "skipped", reason=strategy.unavailable,
                                             model=label))
            continue
        attempt, verified = _attempt(ctx, p, strategy, model, bundle, log, budget, wheels)
        attempt.model = label
        if verified is not None and verified.passed:
            verified = _check_speed(ctx, p, baseline, bundle, log, attempt, verified)
        cell.attempts.append(attempt)
        last = verified or last
        if verified is not None and verified.passed:
            accepted = verified
            break
        attempt.kept = _keep_rejected(ctx, bundle, cell, len(cell.attempts), strategy, label)
    if last is not None:
        cell.accuracy, cell.gates = last.accuracy, last.gates
        cell.runtime, cell.notes = last.runtime, [*planned_notes, *last.lowered.notes]
    if accepted is None:
        return _failed(ctx, cell, log)
    bench = bench_cell(ctx, p, bundle, log)
    if isinstance(bench, str):
        cell.attempts[-1].kept = _keep_rejected(ctx, bundle, cell, len(cell.attempts),
                                                Strategy(cell.attempts[-1].strategy),
                                                cell.attempts[-1].model)
        cell.status, cell.reason = "failed", bench
        return _failed(ctx, cell, log)
    cell.latency, cell.memory = bench["latency"], bench["memory"]
    cell.speed = cell.attempts[-1].speed
    marginal = (cell.speed or {}).get("speedup")
    if marginal is not None and cell.speed.get("min_speedup") and marginal < MARGINAL_SPEEDUP:
        cell.notes.append(f"only {marginal:.2f}× fp32's speed: it passed the speed gate "
                          f"(>= {cell.speed['min_speedup']:g}× in every interleaved round) but "
                          "the gain is within run-to-run noise; raise --min-speedup to refuse "
                          "such cells")
    if ctx.opts.emulate:
        cell.emulated = emulate(ctx, p, bundle, log, budget)
    cell.boards = on_boards(ctx, p, bundle, log, budget)
    device = next((d for d in [cell.emulated or {}, *cell.boards] if d.get("status") ==
                   "failed"), None)
    if device is not None:  # verified on the host, not on the device: not shipped
        last = cell.attempts[-1]
        last.outcome, last.reason = "rejected", device["reason"]
        last.kept = _keep_rejected(ctx, bundle, cell, len(cell.attempts),
                                   Strategy(last.strategy), last.model)
        cell.status, cell.reason = "failed", device["reason"]
        return _failed(ctx, cell, log)
    cell.runtime = {**(cell.runtime or {}), "bench": bench["runtime"]}
    cell.size = sum((bundle / f).stat().st_size for f in accepted.lowered.files)
    resources = resource_gates(ctx.opts.limits, cell.profile, cell.target, cell.precision,
                               cell.latency, cell.size, cell.memory)
    cell.gates = [*cell.gates, *resources]
    missed = [describe(g) for g in resources if not g["ok"]]
    if missed:  # verified, but too slow, big or hungry for this release: not shipped
        last = cell.attempts[-1]
        cell.status, last.outcome = "failed", "rejected"
        cell.reason = last.reason = "release gate missed: " + "; ".join(missed)
        last.kept = _keep_rejected(ctx, bundle, cell, len(cell.attempts),
                                   Strategy(last.strategy), last.model)
        return _failed(ctx, cell, log)
    cell.archive_sha256 = write_archive(bundle, bundle.with_name(bundle.name + ".tar.gz"))
    cell.bundle, cell.archive = str(rel), str(rel) + ".tar.gz"
    cell.status, cell.reason = "ok", None
    return cell


def _failed(ctx: CellContext, cell: Cell, log: Path) -> Cell:
    tried = [a for a in cell.attempts if a.outcome != "skipped"]
    if cell.status != "failed":
        if not tried:
            cell.reason = "no lowering strategy is available: " + "; ".join(
                f"{a.strategy}: {a.reason}" for a in cell.attempts)
        elif len(tried) == 1:
            cell.reason = tried[0].reason
        else:
            names = ", ".join(dict.fromkeys(a.strategy for a in tried))
            models = ", ".join(dict.fromkeys(a.model for a in tried))
            cell.reason = (f"all {len(tried)} attempts rejected (strategies: {names}; "
                           f"prepared models: {models}); last: {tried[-1].reason}")
        cell.status = "failed"
        hint = _hint(ctx, cell)
        if hint:
            cell.reason += f" ({hint})"
    kept = ctx.stage / FAILED / cell.profile / cell.name
    if kept.is_dir() and log.is_file():
        shutil.copyfile(log, kept / "log.txt")
    cell.failed_bundles = str(kept.relative_to(ctx.stage)) if kept.is_dir() else None
    return cell


def _hint(ctx: CellContext, cell: Cell) -> str | None:
    """The flag that may help a cell no strategy could lower."""
    branching = [n for n in ctx.prepared.branch_inputs if n not in ctx.opts.fixed_inputs]
    if branching and any(a.outcome == "rejected" for a in cell.attempts):
        flags = " ".join(f"--fix-input {n}=VALUE" for n in branching)
        return (f"the model branches on input(s) {', '.join(branching)}: {flags} freezes them "
                "so that the branches fold away")
    return None


def native_tries(ctx: CellContext, p: PlannedCell) -> list[tuple[str, Path, Strategy]]:
    """The strategies that read the user's source model directly, for its format (not when
    inputs are fixed: only the prepared ONNX graph has them folded)."""
    imported = ctx.prepared.imported
    if imported is None or ctx.opts.fixed_inputs:
        return []
    return [("source", ctx.prepared.model, s) for s in p.strategies
            if imported.source.format in s.source_formats]


def source_context(prepared: Prepared) -> dict:
    """What native strategies get: the source, its static I/O, files converters can read."""
    imported = prepared.imported
    if imported is None:
        return {}
    native = {k: v for k, v in imported.record.items() if k in ("saved_model",)}
    return {**imported.source.to_dict(), "inputs": [s.to_dict() for s in imported.inputs],
            "outputs": imported.outputs, "native": native}


def rewrites_apply(model: Path, rewrites: tuple[str, ...]) -> bool:
    import onnx

    from edgepack.stages.graph import rewrite_applies

    proto = onnx.load(str(model), load_external_data=False)
    return all(rewrite_applies(proto, name) for name in rewrites)


def model_variants(prepared: Prepared, target) -> list[tuple[str, Path]]:
    """The prepared models a target tries, in order: the fully prepared one (its standard-ops
    copy for targets that run only standard ops), then the minimally prepared one."""
    models = prepared.models
    first = "standard" if target.standard_ops_only and "standard" in models else "prepared"
    variants = [(first, models[first])]
    minimal = models.get("minimal")
    if minimal is not None and minimal.read_bytes() != models[first].read_bytes():
        variants.append(("minimal", minimal))
    return variants


def _keep_rejected(ctx: CellContext, bundle: Path, cell: Cell, number: int,
                   strategy: Strategy, model: str = "prepared") -> str | None:
    """Move a rejected attempt's bundle under failed/ so the user can see what was written."""
    if not bundle.is_dir() or not any(bundle.iterdir()):
        shutil.rmtree(bundle, ignore_errors=True)
        return None
    slug = re.sub(r"[^0-9A-Za-z.]+", "-", strategy.name).strip("-")
    if model != "prepared":
        slug += f"-{model}"
    dest = ctx.stage / FAILED / cell.profile / cell.name / f"{number}-{slug}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(dest, ignore_errors=True)
    bundle.rename(dest)
    return str(dest.relative_to(ctx.stage))


def _attempt(ctx: CellContext, p: PlannedCell, strategy: Strategy, model: Path, bundle: Path,
             log: Path, budget: AccuracyBudget,
             wheels: Path | None = None) -> tuple[Attempt, Verified | None]:
    shutil.rmtree(bundle, ignore_errors=True)
    bundle.mkdir(parents=True)
    lowered, attempt = _lower(ctx, p, strategy, model, bundle, log)
    if lowered is None:
        return attempt, None
    _write_bundle_files(ctx, p, model, bundle, lowered, budget, wheels)
    verified = _verify(ctx, p, bundle, log, lowered, budget)
    attempt.accuracy = _headline(verified.accuracy.get("outputs", {}))
    if verified.passed:
        attempt.outcome = "accepted"
    else:
        attempt.outcome, attempt.reason = "rejected", verified.reason
    return attempt, verified


def _lower(ctx: CellContext, p: PlannedCell, strategy: Strategy, model: Path, bundle: Path,
           log: Path) -> tuple[Lowered | None, Attempt]:
    cell, opts, prep = p.cell, ctx.opts, ctx.prepared
    context = LowerContext(
        strategy=strategy.name, variant=cell.variant,
        calibration_method=opts.calibration_method, timeout=opts.timeout,
        cache_dir=str(ctx.work / "cache" / cell.target), log=str(log),
        options=target_options_for(opts, p.target),
        tolerance=tolerance(budget_for(opts, p.profile, cell, prep.quantized)),
        source=source_context(prep) if strategy.source_formats else {})
    spec = LowerSpec(
        target=cell.target, model=str(model), precision=cell.precision,
        profile=p.profile.source, out_dir=str(bundle),
        calib=str(prep.calib_file) if prep.calib_file else None,
        calib_kind=prep.calib.kind if prep.calib else None,
        calib_source=prep.calib.source if prep.calib else None, context=asdict(context),
        rewrites=list(strategy.rewrites))
    res = run_task(spec, ctx.work / "tmp" / cell.profile / cell.name, log, opts.timeout)
    cell.timings["lower_s"] = round(cell.timings.get("lower_s", 0) + res.seconds, 3)
    attempt = Attempt(strategy.name, "rejected", seconds=round(res.seconds, 3),
                      peak_rss_bytes=res.peak_rss_bytes)
    if not res.ok:
        attempt.reason = f"lowering failed: {res.reason}"
        return None, attempt
    lowered = Lowered(**{k: v for k, v in res.result.items() if k != "peak_rss_bytes"})
    attempt.stats = dict(lowered.stats)
    return lowered, attempt


def _write_bundle_files(ctx: CellContext, p: PlannedCell, model: Path, bundle: Path,
                        lowered: Lowered, budget: AccuracyBudget,
                        wheels: Path | None = None) -> None:
    cell, profile, target, prep = p.cell, p.profile, p.target, ctx.prepared
    golden = prep.evaluation.only(t["name"] for t in lowered.inputs)
    per_sample = max(1, sum(v[0].nbytes for v in golden.arrays.values()))
    golden = golden.head(max(1, min(GOLDEN_SAMPLES, GOLDEN_BYTES // per_sample)))
    n = golden.samples
    version = target.runtime_version()
    manifest = {
        "source": {"file": prep.source["file"], "sha256": prep.source["sha256"],
                   "prepared_sha256": sha256_file(model)},
        "target": cell.target, "precision": cell.precision, "variant": cell.variant,
        "profile": {k: getattr(profile, k) for k in
                    ("name", "description", "arch", "cpu", "os", "python", "glibc")},
        "runtime": {"name": target.runtime, "package": target.packages[0],
                    "verified_version": version, "requires": _version_range(version),
                    "options": lowered.runtime_options},
        "model_file": lowered.model_file,
        "threads": ctx.opts.threads or profile.threads,
        "inputs": lowered.inputs, "outputs": lowered.outputs,
        "preprocessing": None,
        "metadata": prep.source.get("metadata", {}),
        "selftest": {**tolerance(budget), "golden_samples": n},
        "notes": lowered.notes,
    }
    if wheels is not None:
        from edgepack.wheels import copy_into

        manifest["wheels"] = copy_into(wheels, bundle)
    header = (f"# {cell.target} bundle for {profile.name}: {profile.arch}, CPython "
              f"{profile.python}, glibc {profile.glibc} ({profile.os}).\n"
              f"# Pinned to the versions edgepack verified this bundle with.\n")
    golden_out = core.pack({k: v[:n] for k, v in prep.reference_outputs.items()})
    write_bundle(bundle, manifest, golden.arrays, golden_out, target.backend_file(),
                 target.requirements(profile), header)


def _verify(ctx: CellContext, p: PlannedCell, bundle: Path, log: Path, lowered: Lowered,
            budget: AccuracyBudget) -> Verified:
    """Evaluate the bundle on the evaluation data against the reference, then run its own
    selftest. Never raises for the bundle's faults."""
    cell, opts, prep = p.cell, ctx.opts, ctx.prepared
    out = ctx.work / "tmp" / cell.profile / cell.name / "outputs.npz"
    spec = EvaluateSpec(str(bundle), str(prep.eval_file), str(out),
                        opts.threads or p.profile.threads)
    res = run_task(spec, out.parent, log, opts.timeout)
    cell.timings["verify_s"] = round(cell.timings.get("verify_s", 0) + res.seconds, 3)
    if not res.ok:
        return Verified(lowered, {}, [], {}, False, f"running the bundle failed: {res.reason}")
    names = list(prep.reference_outputs)
    outputs = core.unpack(core.load_npz(out), names)
    per_output = compare_outputs(prep.reference_outputs, outputs, prep.evaluation.labels)
    gates = accuracy_gates(per_output, budget)
    passed, selftest_log = check_bundle(bundle, timeout=opts.timeout)
    data = prep.data
    accuracy = {"data": prep.evaluation.kind, "samples": prep.evaluation.samples,
                "source": prep.evaluation.source, "in_sample": data["in_sample"],
                "outputs": per_output, "budget": vars(budget),
                "selftest": selftest_log.splitlines()[-1:]}
    gate_dicts = [g.to_dict() for g in gates] + [
        _selftest_gate(passed)]
    missed = [g.describe() for g in gates if not g.ok]
    if not passed:
        missed.append(f"device selftest failed: {(selftest_log.splitlines() or ['?'])[-1]}")
    reason = "accuracy outside budget: " + "; ".join(missed) if missed else None
    return Verified(lowered, accuracy, gate_dicts, res.result.get("runtime") or {},
                    not missed, reason)


def emulate(ctx: CellContext, p: PlannedCell, bundle: Path, log: Path,
            budget: AccuracyBudget) -> dict:
    """The bundle's selftest and its outputs on every evaluation sample, on the profile's
    CPU under qemu, gated like the host's. No latency: emulated time means nothing."""
    from edgepack.emulation import PYTHON, cpu_for, run_bundle

    if p.profile.arch != "aarch64":  # never skipped silently: say why
        return {"status": "not emulated", "reason": f"{p.profile.arch} profile: only aarch64 "
                f"profiles are emulated (this host is {platform.machine()})"}
    cpu = cpu_for(p.profile.cpu)
    if cpu is None or p.profile.python != PYTHON:
        why = (f"no qemu model for the profile's CPU '{p.profile.cpu}'" if cpu is None else
               f"the emulator's Python is {PYTHON}, the profile's {p.profile.python}")
        return {"status": "not emulated", "reason": why}
    prep, timeout = ctx.prepared, ctx.opts.timeout
    selftest = run_bundle(bundle, ["selftest"], cpu, timeout, log)
    out = ctx.work / "tmp" / p.cell.profile / p.cell.name / "emulated_outputs.npz"
    done = run_bundle(bundle, ["infer", str(prep.eval_file), "-o", str(out)], cpu, timeout,
                      log)
    record = {"cpu": cpu, "verified_on": f"emulated aarch64 ({cpu})",
              "selftest": selftest.last_line(), "seconds": round(selftest.seconds +
                                                                  done.seconds, 1)}
    if not done.ok or not out.is_file():
        return {**record, "status": "failed",
                "reason": f"on emulated aarch64 ({cpu}) the bundle did not run: "
                          f"{done.reason or done.last_line()}"}
    missed = _device_accuracy(prep, budget, out, record)
    record["gates"].append(_selftest_gate(selftest.ok))
    if not selftest.ok:
        missed.append(f"selftest failed: {selftest.last_line()}")
    record["status"] = "failed" if missed else "ok"
    if missed:
        record["reason"] = (f"on emulated aarch64 ({cpu}): accuracy outside budget: "
                            + "; ".join(missed))
    return record


def _selftest_gate(passed: bool) -> dict:
    return {"name": "selftest", "value": float(passed), "limit": 1.0, "kind": "min",
            "ok": passed}


def _headline(per_output: dict) -> dict:
    """The per-output numbers a report shows (of everything compare_outputs measured)."""
    return {name: {k: m.get(k) for k in ("cosine", "rel_error", "max_abs", "match", "top1",
                                         "top1_reference", "top1_agreement") if k in m}
            for name, m in per_output.items()}


def _device_accuracy(prep: Prepared, budget: AccuracyBudget, outputs_file: Path,
                     record: dict) -> list[str]:
    """Compare a device's outputs on the evaluation samples with the reference, gated by
    the cell's budget; fills ``record`` and returns the gates missed."""
    outputs = core.unpack(core.load_npz(outputs_file), list(prep.reference_outputs))
    per_output = compare_outputs(prep.reference_outputs, outputs, prep.evaluation.labels)
    gates = accuracy_gates(per_output, budget)
    record.update(outputs=_headline(per_output), gates=[g.to_dict() for g in gates])
    return [g.describe() for g in gates if not g.ok]


def on_boards(ctx: CellContext, p: PlannedCell, bundle: Path, log: Path,
              budget: AccuracyBudget) -> list[dict]:
    """--remote: the bundle's selftest, evaluation and bench on each board of this profile,
    in parallel; accuracy gated like the host's, latency the board's own."""
    from concurrent.futures import ThreadPoolExecutor

    from edgepack.remote import on_board, parse_remote

    remotes = [r for r in map(parse_remote, ctx.opts.remotes)
               if r.profile in (None, p.profile.name)]
    if not remotes:
        return []
    opts, prep = ctx.opts, ctx.prepared
    bench = ["--warmup", str(opts.warmup), "--threads", str(opts.threads or p.profile.threads),
             *(["--runs", str(opts.runs)] if opts.runs else
               ["--min-time", str(opts.min_time or 1.0)])]
    with ThreadPoolExecutor(max_workers=len(remotes)) as pool:
        results = list(pool.map(lambda r: on_board(r, bundle, opts.timeout, prep.eval_file,
                                                   bench, log=log), remotes))
    return [_board_record(prep, budget, r) for r in results]


def _board_record(prep: Prepared, budget: AccuracyBudget, result: dict) -> dict:
    record = {"remote": result["remote"], "identity": result.get("identity"),
              "selftest": result.get("selftest")}
    if "error" in result:
        return {**record, "status": "failed", "reason": result["error"]}
    missed = _device_accuracy(prep, budget, Path(result["outputs_file"]), record)
    record["gates"].append(_selftest_gate(True))  # a failed selftest is an error above
    bench = result["bench"]
    record.update(
        latency={**bench["latency_ms"], "cold_start_ms": bench["cold_start_ms"],
                 "threads": bench["threads"], "measured_on": result["remote"]},
        memory=bench["memory"], machine=bench.get("machine"), runtime=bench.get("runtime"),
        status="failed" if missed else "ok")
    if missed:
        record["reason"] = (f"on {result['remote']}: accuracy outside budget: "
                            + "; ".join(missed))
    return record


MARGINAL_SPEEDUP = 1.1  # a shipped cell below this gets a note: a gain within noise
SPEED_ROUNDS = 3  # interleaved rounds of (fp32, candidate) for the speed gate
SPEED_SECONDS = 0.3  # timed per run


def _check_speed(ctx: CellContext, p: PlannedCell, baseline: Path | None, bundle: Path,
                 log: Path, attempt: Attempt, verified: Verified) -> Verified:
    """Time the verified bundle against fp32 and reject it when it is not fast enough."""
    gate = speed_gate(ctx.opts, p.profile, p.cell)
    if gate is None or baseline is None:
        if gate:
            attempt.speed = {"speedup": None, "min_speedup": gate,
                             "note": "no fp32 bundle to compare with (its cell failed)"}
        return verified
    speed = compare_speed(ctx, p, baseline, bundle, log)
    attempt.speed = {**speed, "min_speedup": gate}
    if "error" in speed:
        reason = f"speed comparison failed: {speed['error']}"
    elif speed["worst_round"] < gate:
        reason = (f"not fast enough: p50 {speed['p50_ms']:.4g} ms against fp32's "
                  f"{speed['fp32_p50_ms']:.4g} ms (speedup {speed['speedup']:.2f}×, "
                  f"{speed['worst_round']:.2f}× in its worst of {SPEED_ROUNDS} interleaved "
                  f"rounds; needs >= {gate:g}× in every round)")
    else:
        return verified
    attempt.outcome, attempt.reason = "rejected", reason
    return replace(verified, passed=False, reason=reason)


def compare_speed(ctx: CellContext, p: PlannedCell, baseline: Path, bundle: Path,
                  log: Path) -> dict:
    """p50 of the fp32 bundle and of ``bundle``, each in its own fresh process, alternating
    (fp32, x, x, fp32, fp32, x ...) so that a noisy host slows both alike. ``speedup`` is the
    ratio of the medians; ``worst_round`` the lowest ratio of one round's pair, which the gate
    uses: "faster" must hold in every round, not only on average."""
    threads = ctx.opts.threads or p.profile.threads
    runs: dict[str, list[float]] = {"fp32": [], "this": []}
    pair = [("fp32", baseline), ("this", bundle)]
    for r in range(SPEED_ROUNDS):
        for label, path in pair if r % 2 == 0 else pair[::-1]:
            spec = BenchSpec(str(path), threads, warmup=5, min_time=SPEED_SECONDS)
            with ctx.bench_lock:
                res = run_task(spec, ctx.work / "tmp" / p.cell.profile / p.cell.name / "speed",
                               log, ctx.opts.timeout)
            if not res.ok:
                return {"error": f"{label}: {res.reason}"}
            runs[label].append(res.result["latency_ms"]["p50"])
    fp32, this = float(np.median(runs["fp32"])), float(np.median(runs["this"]))
    rounds = [a / b for a, b in zip(runs["fp32"], runs["this"], strict=True)]
    return {"speedup": fp32 / this, "worst_round": min(rounds), "fp32_p50_ms": fp32,
            "p50_ms": this,
            "fp32_runs_ms": runs["fp32"], "runs_ms": runs["this"], "rounds": SPEED_ROUNDS,
            "measured_on": "build host"}


def bench_cell(ctx: CellContext, p: PlannedCell, bundle: Path, log: Path) -> dict | str:
    """Latency, memory and runtime info of a verified bundle, or why benchmarking failed.
    With ``bench_rounds`` > 1 the bundle is timed in that many fresh processes: the round
    with the median p50 is reported, and every round's p50 is kept (``rounds_p50_ms``) so a
    later ``report compare`` can tell a change from the host's process-to-process noise."""
    opts, cell = ctx.opts, p.cell
    threads = opts.threads or p.profile.threads
    spec = BenchSpec(str(bundle), threads, opts.warmup, opts.runs, opts.min_time)
    results, seconds = [], 0.0
    for _ in range(opts.bench_rounds):
        with ctx.bench_lock:
            res = run_task(spec, ctx.work / "tmp" / cell.profile / cell.name, log, opts.timeout)
        seconds += res.seconds
        if not res.ok:
            cell.timings["bench_s"] = round(seconds, 3)
            return f"benchmark failed: {res.reason}"
        results.append(res.result)
    cell.timings["bench_s"] = round(seconds, 3)
    ordered = sorted(results, key=lambda r: r["latency_ms"]["p50"])
    r = ordered[len(ordered) // 2]
    latency = {**r["latency_ms"], "threads": r["threads"], "cold_start_ms": r["cold_start_ms"],
               "measured_on": "build host"}
    if len(results) > 1:
        latency["rounds_p50_ms"] = [x["latency_ms"]["p50"] for x in results]
    return {"latency": latency, "memory": r["memory"], "runtime": r["runtime"]}


def _version_range(version: str) -> str:
    major = version.split(".")[0]
    return f">={version},<{int(major) + 1}" if major.isdigit() else f"=={version}"


def build_record() -> dict:
    """When, where and with which edgepack this build ran (stored in each cell it built)."""
    import platform

    from edgepack import __version__

    return {"created": datetime.now(UTC).isoformat(timespec="seconds"),
            "host": platform.node(), "edgepack_version": __version__}
