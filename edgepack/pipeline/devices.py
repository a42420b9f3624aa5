"""A verified bundle on the device's own CPU: under emulation (``--emulate``: the profile's
CPU model under qemu, accuracy only) and on real boards (``--remote``: accuracy and the
board's own latency). A device that disagrees with the host fails the cell."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

from edgepack.device import core
from edgepack.pipeline.attempts import headline, selftest_gate
from edgepack.pipeline.bundling import CellPaths
from edgepack.pipeline.plan import PlannedCell
from edgepack.pipeline.prepare import Prepared
from edgepack.profiles import AccuracyBudget
from edgepack.verify import accuracy_gates, compare_outputs, output_kinds


@dataclass(frozen=True)
class Devices:
    """What the emulated CPU and the boards found; ``failure`` when one of them refused."""

    emulated: dict | None = None
    boards: tuple[dict, ...] = ()

    @property
    def failure(self) -> str | None:
        failed = next((d for d in [self.emulated or {}, *self.boards]
                       if d.get("status") == "failed"), None)
        return failed["reason"] if failed else None


def on_devices(ctx, p: PlannedCell, paths: CellPaths, budget: AccuracyBudget) -> Devices:
    emulated = emulate(ctx, p, paths, budget) if ctx.opts.emulate else None
    return Devices(emulated, tuple(on_boards(ctx, p, paths, budget)))


def emulate(ctx, p: PlannedCell, paths: CellPaths, budget: AccuracyBudget) -> dict:
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
    prep, timeout, bundle = ctx.prepared, ctx.opts.timeout, paths.bundle
    features = p.profile.features
    ctx.say(f"{p.cell.key}: verifying on the emulated {cpu}")
    selftest = run_bundle(bundle, ["selftest"], cpu, timeout, paths.log, features)
    out = paths.scratch / "emulated_outputs.npz"
    done = run_bundle(bundle, ["infer", str(prep.eval_file), "-o", str(out)], cpu, timeout,
                      paths.log, features)
    record = {"cpu": cpu, "verified_on": f"emulated aarch64 ({cpu})",
              "selftest": selftest.last_line(),
              "seconds": round(selftest.seconds + done.seconds, 1)}
    if not done.ok or not out.is_file():
        return {**record, "status": "failed",
                "reason": f"on emulated aarch64 ({cpu}) the bundle did not run: "
                          f"{done.reason or done.last_line()}"}
    missed = device_accuracy(prep, budget, out, record, p.profile.output_kinds)
    record["gates"].append(selftest_gate(selftest.ok))
    if not selftest.ok:
        missed.append(f"selftest failed: {selftest.last_line()}")
    record["status"] = "failed" if missed else "ok"
    if missed:
        record["reason"] = (f"on emulated aarch64 ({cpu}): accuracy outside budget: "
                            + "; ".join(missed))
    return record


def device_accuracy(prep: Prepared, budget: AccuracyBudget, outputs_file: Path,
                    record: dict, declared: dict[str, str]) -> list[str]:
    """Compare a device's outputs on the evaluation samples with the reference, gated by
    the cell's budget (outputs compared as ``declared`` or detected); fills ``record`` and
    returns the gates missed."""
    outputs = core.unpack(core.load_npz(outputs_file), list(prep.reference_outputs))
    per_output = compare_outputs(prep.reference_outputs, outputs, prep.evaluation.labels,
                                 output_kinds(prep.reference_outputs, declared))
    gates = accuracy_gates(per_output, budget)
    record.update(outputs=headline(per_output), gates=[g.to_dict() for g in gates])
    return [g.describe() for g in gates if not g.ok]


def on_boards(ctx, p: PlannedCell, paths: CellPaths, budget: AccuracyBudget) -> list[dict]:
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
    ctx.say(f"{p.cell.key}: running on {', '.join(r.name for r in remotes)}")
    with ThreadPoolExecutor(max_workers=len(remotes)) as pool:
        results = list(pool.map(lambda r: on_board(r, paths.bundle, opts.timeout,
                                                   prep.eval_file, bench, log=paths.log),
                                remotes))
    return [board_record(prep, budget, r, p.profile.output_kinds) for r in results]


def board_record(prep: Prepared, budget: AccuracyBudget, result: dict,
                 declared: dict[str, str]) -> dict:
    record = {"remote": result["remote"], "identity": result.get("identity"),
              "selftest": result.get("selftest")}
    if "error" in result:
        return {**record, "status": "failed", "reason": result["error"]}
    missed = device_accuracy(prep, budget, Path(result["outputs_file"]), record, declared)
    record["gates"].append(selftest_gate(True))  # a failed selftest is an error above
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
