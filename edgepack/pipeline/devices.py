"""A verified bundle on the device's own CPU: under emulation (``--emulate``: the profile's
CPU model under qemu, accuracy only) and on real boards (``--remote``: accuracy and the
board's own latency). A device that disagrees with the host fails the cell."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

from edgepack.device import core
from edgepack.gates import Gate
from edgepack.pipeline.attempts import headline, selftest_gate
from edgepack.pipeline.bundling import CellPaths
from edgepack.pipeline.plan import PlannedCell
from edgepack.pipeline.prepare import Prepared
from edgepack.profiles import AccuracyBudget
from edgepack.report.records import BoardRun, Emulated, Latency, Memory
from edgepack.speed import Source
from edgepack.verify import accuracy_gates, compare_outputs, output_kinds


@dataclass(frozen=True)
class Devices:
    """What the emulated CPU and the boards found; ``failure`` when one of them refused."""

    emulated: Emulated | None = None
    boards: tuple[BoardRun, ...] = ()

    @property
    def failure(self) -> str | None:
        runs = [r for r in (self.emulated, *self.boards) if r is not None]
        return next((r.reason for r in runs if r.status == "failed"), None)


def on_devices(ctx, p: PlannedCell, paths: CellPaths, budget: AccuracyBudget,
               boards: tuple[BoardRun, ...] | None = None) -> Devices:
    """Emulation (``--emulate``) and the boards; ``boards`` when the speed check already ran
    this bundle on them."""
    emulated = emulate(ctx, p, paths, budget) if ctx.opts.emulate else None
    if boards is None:
        boards = on_boards(ctx, p, paths, budget)
    return Devices(emulated, boards)


def emulate(ctx, p: PlannedCell, paths: CellPaths, budget: AccuracyBudget) -> Emulated:
    """The bundle's selftest and its outputs on every evaluation sample, on the profile's
    CPU under qemu, gated like the host's. No latency: emulated time means nothing."""
    from edgepack.emulation import PYTHON, run_bundle

    if p.profile.arch != "aarch64":  # never skipped silently: say why
        return Emulated("not emulated", f"{p.profile.arch} profile: only aarch64 "
                        f"profiles are emulated (this host is {platform.machine()})")
    guest = p.guest
    if guest is None or p.profile.python != PYTHON:
        why = (f"no CPU model for the profile's CPU '{p.profile.cpu}'" if guest is None else
               f"the emulator's Python is {PYTHON}, the profile's {p.profile.python}")
        return Emulated("not emulated", why)
    prep, timeout, bundle = ctx.prepared, ctx.opts.timeout, paths.bundle
    cpu = guest.qemu
    ctx.say(f"{p.cell.key}: verifying on the emulated {cpu}")
    selftest = run_bundle(bundle, ["selftest"], guest, timeout, paths.log)
    out = paths.scratch / "emulated_outputs.npz"
    done = run_bundle(bundle, ["infer", str(prep.eval_file), "-o", str(out)], guest, timeout,
                      paths.log)
    where = f"emulated aarch64 ({cpu})"
    seconds = round(selftest.seconds + done.seconds, 1)
    if not done.ok or not out.is_file():
        return Emulated("failed", f"on {where} the bundle did not run: "
                        f"{done.reason or done.last_line()}", cpu, where, selftest.last_line(),
                        seconds)
    outputs, gates = device_accuracy(prep, budget, out, p.profile.output_kinds)
    gates = (*gates, selftest_gate(selftest.ok))
    missed = [g.describe() for g in gates if not g.ok and g.name != "selftest"]
    if not selftest.ok:
        missed.append(f"selftest failed: {selftest.last_line()}")
    reason = f"on {where}: accuracy outside budget: " + "; ".join(missed) if missed else None
    return Emulated("failed" if missed else "ok", reason, cpu, where, selftest.last_line(),
                    seconds, outputs, gates)


def device_accuracy(prep: Prepared, budget: AccuracyBudget, outputs_file: Path,
                    declared: dict[str, str]) -> tuple[dict, tuple[Gate, ...]]:
    """A device's outputs on the evaluation samples against the reference, gated by the
    cell's budget (outputs compared as ``declared`` or detected): the headline numbers per
    output and the gates."""
    outputs = core.unpack(core.load_npz(outputs_file), list(prep.reference_outputs))
    per_output = compare_outputs(prep.reference_outputs, outputs, prep.evaluation.labels,
                                 output_kinds(prep.reference_outputs, declared))
    return headline(per_output), tuple(accuracy_gates(per_output, budget))


def on_boards(ctx, p: PlannedCell, paths: CellPaths, budget: AccuracyBudget
              ) -> tuple[BoardRun, ...]:
    """--remote: the bundle's selftest, evaluation and bench on each board of this profile,
    in parallel; accuracy gated like the host's, latency the board's own."""
    from concurrent.futures import ThreadPoolExecutor

    from edgepack.remote import on_board

    remotes = [r for r in ctx.opts.remotes if r.profile in (None, p.profile.name)]
    if not remotes:
        return ()
    opts, prep = ctx.opts, ctx.prepared
    bench = ["--warmup", str(opts.warmup), "--threads", str(opts.threads or p.profile.threads),
             *(["--runs", str(opts.runs)] if opts.runs else
               ["--min-time", str(opts.min_time or 1.0)])]
    ctx.say(f"{p.cell.key}: running on {', '.join(r.name for r in remotes)}")
    with ThreadPoolExecutor(max_workers=len(remotes)) as pool:
        results = list(pool.map(lambda r: on_board(r, paths.bundle, opts.timeout,
                                                   prep.eval_file, bench, log=paths.log),
                                remotes))
    return tuple(board_run(prep, budget, r, p.profile.output_kinds) for r in results)


def board_run(prep: Prepared, budget: AccuracyBudget, result: dict,
              declared: dict[str, str]) -> BoardRun:
    """What ``remote.on_board`` brought back, gated: accuracy like the host's, the board's
    own latency and memory."""
    remote, identity, selftest = result["remote"], result.get("identity"), result.get("selftest")
    if "error" in result:
        return BoardRun(remote, "failed", result["error"], identity, selftest)
    outputs, gates = device_accuracy(prep, budget, Path(result["outputs_file"]), declared)
    gates = (*gates, selftest_gate(True))  # a failed selftest is an error above
    missed = [g.describe() for g in gates if not g.ok]
    bench = result["bench"]
    return BoardRun(
        remote, "failed" if missed else "ok",
        f"on {remote}: accuracy outside budget: " + "; ".join(missed) if missed else None,
        identity, selftest, outputs, gates,
        Latency.of_bench(bench, measured_on=remote, source=Source.BOARD),
        Memory(bench["memory"]["peak_rss_bytes"], bench["memory"].get("rss_before_load_bytes")),
        bench.get("machine"), bench.get("runtime"))


def board_for_speed(fp32: tuple[BoardRun, ...], this: tuple[BoardRun, ...]
                    ) -> tuple[BoardRun, BoardRun] | None:
    """The fp32 bundle's and this bundle's runs on the same board, both with a latency (the
    first such board), or None: then no board can decide the speed."""
    measured = {b.remote: b for b in fp32 if b.status == "ok" and b.latency}
    return next(((measured[b.remote], b) for b in this
                 if b.status == "ok" and b.latency and b.remote in measured), None)
