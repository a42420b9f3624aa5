"""A cell's speed: the device estimate (instructions counted on the profile's CPU model under
emulation, turned into time by its CPU model), the speed decision against the fp32 bundle of
the same profile and target (inside the strategy loop: a bundle that is not shown faster is
another rejected attempt), and the build host's benchmark.

The decision comes from the best source there is (``speed``): the board's own measurement
when the build runs on a board of the profile (``--remote``), else the device estimate, else
host rounds. Every host timing runs alone (a lock), in a fresh process that has loaded only the
bundle's runtime; counting runs alone too.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, replace
from pathlib import Path

from edgepack import speed
from edgepack.child import run_task
from edgepack.cpus import Counts, estimate
from edgepack.gates import Cost
from edgepack.options import BuildOptions
from edgepack.pipeline.attempts import SpeedCheck, Verified
from edgepack.pipeline.bundling import CellPaths
from edgepack.pipeline.devices import board_for_speed, on_boards
from edgepack.pipeline.plan import PlannedCell
from edgepack.profiles import AccuracyBudget
from edgepack.report.model import Attempt, Cell, Status
from edgepack.report.records import BoardRun, Counted, DeviceEstimate, Latency, Memory
from edgepack.settings import Precision
from edgepack.speed import Decision, Source
from edgepack.tasks import BenchSpec

MARGINAL_SPEEDUP = 1.1  # a shipped cell below this gets a note: a gain within noise
MIN_ROUNDS, MAX_ROUNDS = 3, 7  # interleaved host rounds: at least, and at most while undecided
SPEED_SECONDS = 0.3  # timed per run
HOST_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


@dataclass(frozen=True)
class Bench:
    """The build host's benchmark of an accepted bundle, or why it failed."""

    latency: Latency | None = None
    memory: Memory | None = None
    runtime: dict | None = None
    seconds: float = 0.0
    failure: str | None = None


def speed_gate(opts: BuildOptions, profile, cell: Cell) -> float | None:
    """The speedup over fp32 this cell must reach (0: reported only; None: not compared)."""
    if cell.precision == Precision.FP32:
        return 0.0 if cell.variant else None  # a device-default variant: reported only
    if opts.min_speedup is not None:
        return opts.min_speedup
    return profile.min_speedup(cell.precision)


def speed_required(opts: BuildOptions) -> bool:
    """Whether the user asked for the speed (a cell not shown faster then fails the build,
    where by default it is only declined)."""
    return opts.min_speedup is not None


# --------------------------------------------------------------------------- device estimates
def not_estimated(opts: BuildOptions, p: PlannedCell) -> str | None:
    """Why this cell gets no device estimate (its speed is the host's), or None."""
    profile = p.profile
    if opts.device_estimate == "off":
        return "--device-estimate off: speed figures are the build host's"
    host = HOST_ARCH.get(platform.machine().lower(), platform.machine())
    if profile.arch == host and opts.device_estimate != "on":
        return f"the build host is a {host} machine like the profile: its speed is measured here"
    if p.guest is None:
        from edgepack.cpus import all_cpus

        known = ", ".join(c.name for c in all_cpus().values())
        return (f"no CPU model for '{profile.cpu}' (known: {known}): speed figures are the "
                "build host's")
    if profile.clock_ghz is None:
        return f"profile '{profile.name}' gives no clock_ghz: speed figures are the build host's"
    from edgepack.emulation import SYSROOT

    missing = SYSROOT.counter_missing()
    return f"{missing}; speed figures are the build host's" if missing else None


def device_estimate(ctx, p: PlannedCell, paths: CellPaths) -> DeviceEstimate:
    """The bundle's estimated latency on the profile's CPU, or why there is none."""
    why = not_estimated(ctx.opts, p)
    if why:
        return DeviceEstimate("not estimated", why)
    from edgepack.emulation import count_instructions

    cpu = p.guest.cpu
    ctx.say(f"{p.cell.key}: counting instructions on the emulated {cpu.name}")
    with ctx.bench_lock:  # counting is heavy: alone, like every timing
        counted = count_instructions(paths.bundle, p.guest, ctx.opts.timeout,
                                     paths.scratch / "count", paths.log)
    if "error" in counted:
        return DeviceEstimate("failed", counted["error"])
    threads = ctx.opts.threads or p.profile.threads
    guess = estimate(Counts.from_dict(counted["counts"]), cpu, p.profile.clock_ghz, threads)
    return DeviceEstimate.of(guess, Counted(counted["cpu"], counted["spread"],
                                            counted["windows"], counted["threads"],
                                            counted["seconds"]))


# --------------------------------------------------------------------------- speed decisions
def speed_check(ctx, p: PlannedCell, baseline: Cell | None, paths: CellPaths,
                budget: AccuracyBudget) -> SpeedCheck:
    """The strategy loop's speed check for this cell, against ``baseline`` (the shipped fp32
    cell of the same profile and target); boards check accuracy with ``budget``."""
    def check(attempt: Attempt, verified: Verified) -> tuple[Attempt, Verified]:
        gate = speed_gate(ctx.opts, p.profile, p.cell)
        if gate is None:
            return attempt, verified
        if baseline is None or baseline.status != Status.OK:
            return (replace(attempt, speed=speed.not_compared(
                gate, "no fp32 bundle to compare with (its cell failed)")), verified)
        decision, device, boards = decide(ctx, p, baseline, paths, gate, budget)
        attempt = replace(attempt, device=device, speed=decision)
        verified = replace(verified, boards=boards)
        board_failure = next((b.reason for b in boards or () if b.status != "ok"), None)
        if board_failure:  # verified here, not on the board: rejected like any failure
            return (replace(attempt, outcome="rejected", reason=board_failure),
                    replace(verified, passed=False, reason=board_failure))
        if decision.shipped:
            return attempt, verified
        reason = speed.describe(decision)
        return (replace(attempt, outcome="rejected", reason=reason),
                replace(verified, passed=False, reason=reason))
    return check


def decide(ctx, p: PlannedCell, baseline: Cell, paths: CellPaths, gate: float,
           budget: AccuracyBudget) -> tuple[Decision, DeviceEstimate,
                                             tuple[BoardRun, ...] | None]:
    """The decision from the best source — the board's own p50s where a board of the profile
    measured both bundles, else the device estimates where both bundles have one, else host
    rounds — with the host's ratio beside a decision from another source; this bundle's
    device estimate, and its board runs (None: no board)."""
    device = device_estimate(ctx, p, paths)
    boards = on_boards(ctx, p, paths, budget) if ctx.opts.remotes else None
    decision = None
    pair = board_for_speed(baseline.boards, boards or ())
    if pair is not None:
        old, new = pair
        decision = speed.from_board(old.latency.p50, new.latency.p50, gate, new.remote)
    elif device.ok and baseline.device is not None and baseline.device.ok:
        decision = speed.from_estimates(baseline.device.estimate.p50_ms,
                                        device.estimate.p50_ms, gate, device.estimate.cpu)
    if decision is not None:  # the host's ratio beside it, for the report (not decided on)
        host = compare_on_host(ctx, p, ctx.stage / baseline.bundle, paths, gate, MIN_ROUNDS)
        return decision.with_host(host), device, boards
    host = compare_on_host(ctx, p, ctx.stage / baseline.bundle, paths, gate, MAX_ROUNDS)
    return host.with_host(host), device, boards


def compare_on_host(ctx, p: PlannedCell, fp32_bundle: Path, paths: CellPaths, gate: float,
                    max_rounds: int) -> Decision:
    """p50 of the fp32 bundle and of this cell's, each in its own fresh process, alternating
    (fp32, x, x, fp32, ...) so that a noisy host slows both alike; rounds are added (up to
    ``max_rounds``) while the interval still straddles the threshold. With no threshold
    (``--min-speedup 0``: reported, never decided on) one round is taken, except under
    ``--precision auto``, which picks the fastest by this ratio."""
    threads = ctx.opts.threads or p.profile.threads
    ctx.say(f"{p.cell.key}: timing against fp32 on the build host")
    runs: dict[str, list[float]] = {"fp32": [], "this": []}
    pair = [("fp32", fp32_bundle), ("this", paths.bundle)]
    decision = None
    for r in range(max_rounds):
        for label, path in pair if r % 2 == 0 else pair[::-1]:
            spec = BenchSpec(str(path), threads, warmup=5, min_time=SPEED_SECONDS)
            with ctx.bench_lock:
                res = run_task(spec, paths.scratch / "speed", paths.log, ctx.opts.timeout)
            if not res.ok:
                return speed.error(gate, f"timing failed ({label}): {res.reason}", r)
            runs[label].append(res.result["latency_ms"]["p50"])
        if r + 1 >= (MIN_ROUNDS if gate > 0 or p.cell.auto else 1):
            decision = speed.from_host_rounds(runs["fp32"], runs["this"], gate)
            if decision.verdict != speed.UNDECIDED:
                break
    return decision


def release_cost(host: Latency | None, memory: Memory | None, device: DeviceEstimate | None,
                 boards: tuple[BoardRun, ...], size: int | None) -> Cost:
    """What release gates read, from the best source: a board's own latency, else the
    device estimate (which has a p50 only), else the build host's."""
    board = next((b for b in boards if b.status == "ok" and b.latency), None)
    rss = memory.peak_rss_bytes if memory else None
    if board is not None:
        lat = board.latency
        return Cost(_percentiles(lat), lat.measured_on, False, size,
                    board.memory.peak_rss_bytes if board.memory else rss)
    if device is not None and device.ok:
        e = device.estimate
        return Cost({"p50": e.p50_ms, "mean": e.p50_ms}, f"estimate for {e.cpu} @ "
                    f"{e.clock_ghz:g} GHz", True, size, rss)
    return Cost(_percentiles(host) if host else {}, host.measured_on if host else "?", False,
                size, rss)


def _percentiles(lat: Latency) -> dict[str, float]:
    return {k: lat.percentile(k) for k in ("p50", "p90", "p99", "mean", "max")}


def bench_cell(ctx, p: PlannedCell, bundle: Path, log: Path, scratch: Path) -> Bench:
    """Latency, memory and runtime info of a verified bundle on the build host, or why
    benchmarking failed. With ``bench_rounds`` > 1 the bundle is timed in that many fresh
    processes: the round with the median p50 is reported, and every round's p50 is kept
    (``rounds_p50_ms``) so a later ``report compare`` can tell a change from the host's
    process-to-process noise."""
    opts = ctx.opts
    ctx.say(f"{p.cell.key}: benchmarking on the build host")
    spec = BenchSpec(str(bundle), opts.threads or p.profile.threads, opts.warmup, opts.runs,
                     opts.min_time)
    results, seconds = [], 0.0
    for _ in range(opts.bench_rounds):
        with ctx.bench_lock:
            res = run_task(spec, scratch, log, opts.timeout)
        seconds += res.seconds
        if not res.ok:
            return Bench(seconds=seconds, failure=f"benchmark failed: {res.reason}")
        results.append(res.result)
    ordered = sorted(results, key=lambda r: r["latency_ms"]["p50"])
    r = ordered[len(ordered) // 2]
    latency = Latency.of_bench(r)
    if len(results) > 1:
        latency = replace(latency, rounds_p50_ms=tuple(x["latency_ms"]["p50"] for x in results))
    memory = r["memory"]
    return Bench(latency, Memory(memory["peak_rss_bytes"], memory.get("rss_before_load_bytes")),
                 r["runtime"], seconds)


def marginal_note(decision: Decision | None) -> str | None:
    """A note for a shipped cell whose host-timed gain is small (a device estimate's or a
    board's ratio is exact enough to need none)."""
    if decision is None or not decision.decided or not decision.threshold \
            or decision.source != Source.HOST or decision.speedup >= MARGINAL_SPEEDUP:
        return None
    return (f"only {decision.speedup:.2f}× fp32's speed on the build host: shown faster within "
            f"the noise of {decision.rounds} interleaved rounds, but a small gain; raise "
            "--min-speedup to refuse such cells")


def choose_auto(cells: list[Cell]) -> list[Cell]:
    """For --precision auto: per profile and target, the fastest ok cell (speedup over fp32
    from the best source; fp32 itself is 1.0) marked chosen with why it won, and the others
    optional. Returns the cells in the same order."""
    groups: dict[tuple[str, str], list[Cell]] = {}
    for cell in cells:
        if cell.auto and not cell.variant:
            groups.setdefault((cell.profile, cell.target), []).append(cell)
    marked: dict[int, Cell] = {}
    for group in groups.values():
        ok = [c for c in group if c.status == Status.OK]
        if not ok:
            continue
        best = max(ok, key=_speedup)
        source = best.speed.source if best.speed and best.speed.source else Source.HOST
        others = "; ".join(f"{c.precision} {_speedup(c):.2f}×" if c.status == Status.OK else
                           f"{c.precision} {c.status}" for c in group if c is not best)
        chosen = (f"fastest within budget: {_speedup(best):.2f}× fp32's speed, "
                  f"{source.words} (others: {others})")
        for cell in group:
            marked[id(cell)] = replace(cell, chosen=chosen) if cell is best else \
                replace(cell, optional=True)
    return [marked.get(id(c), c) for c in cells]


def _speedup(c: Cell) -> float:
    if c.precision == Precision.FP32:
        return 1.0
    return (c.speed.speedup if c.speed else None) or 0.0
