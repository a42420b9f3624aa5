"""A cell's speed: the device estimate (instructions counted on the profile's CPU model under
emulation, turned into time by its CPU model), the speed decision against the fp32 bundle of
the same profile and target (inside the strategy loop: a bundle that is not shown faster is
another rejected attempt), and the build host's benchmark. Every host timing runs alone (a
lock), in a fresh process that has loaded only the bundle's runtime; counting runs alone too.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, replace
from pathlib import Path

from edgepack import speed
from edgepack.child import run_task
from edgepack.cpus import Counts, cpu_model, estimate
from edgepack.options import BuildOptions
from edgepack.pipeline.attempts import SpeedCheck, Verified
from edgepack.pipeline.bundling import CellPaths
from edgepack.pipeline.plan import PlannedCell
from edgepack.profiles import DeviceProfile
from edgepack.report.model import Attempt, Cell
from edgepack.tasks import BenchSpec

MARGINAL_SPEEDUP = 1.1  # a shipped cell below this gets a note: a gain within noise
MIN_ROUNDS, MAX_ROUNDS = 3, 7  # interleaved host rounds: at least, and at most while undecided
SPEED_SECONDS = 0.3  # timed per run
HOST_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


@dataclass(frozen=True)
class Bench:
    """The build host's benchmark of an accepted bundle, or why it failed."""

    latency: dict | None = None
    memory: dict | None = None
    runtime: dict | None = None
    seconds: float = 0.0
    failure: str | None = None


def speed_gate(opts: BuildOptions, profile: DeviceProfile, cell: Cell) -> float | None:
    """The speedup over fp32 this cell must reach (0: reported only; None: not compared)."""
    if cell.precision == "fp32":
        return 0.0 if cell.variant else None  # a device-default variant: reported only
    if opts.min_speedup is not None:
        return opts.min_speedup
    return profile.min_speedup(cell.precision)


def speed_required(opts: BuildOptions) -> bool:
    """Whether the user asked for the speed (a cell not shown faster then fails the build,
    where by default it is only declined)."""
    return opts.min_speedup is not None


# --------------------------------------------------------------------------- device estimates
def not_estimated(ctx, profile: DeviceProfile) -> str | None:
    """Why this profile's cells get no device estimate (their speed is the host's), or None."""
    if ctx.opts.device_estimate == "off":
        return "--device-estimate off: speed figures are the build host's"
    host = HOST_ARCH.get(platform.machine().lower(), platform.machine())
    if profile.arch == host and ctx.opts.device_estimate != "on":
        return f"the build host is a {host} machine like the profile: its speed is measured here"
    cpu = cpu_model(profile.cpu)
    if cpu is None:
        from edgepack.cpus import all_cpus

        known = ", ".join(c.name for c in all_cpus().values())
        return (f"no CPU model for '{profile.cpu}' (known: {known}): speed figures are the "
                "build host's")
    if profile.clock_ghz is None:
        return f"profile '{profile.name}' gives no clock_ghz: speed figures are the build host's"
    from edgepack.emulation import SYSROOT

    missing = SYSROOT.counter_missing()
    return f"{missing}; speed figures are the build host's" if missing else None


def device_estimate(ctx, p: PlannedCell, paths: CellPaths) -> dict:
    """The bundle's estimated latency on the profile's CPU, or why there is none."""
    why = not_estimated(ctx, p.profile)
    if why:
        return {"status": "not estimated", "reason": why}
    from edgepack.emulation import count_instructions

    cpu = cpu_model(p.profile.cpu)
    ctx.say(f"{p.cell.key}: counting instructions on the emulated {cpu.name}")
    with ctx.bench_lock:  # counting is heavy: alone, like every timing
        counted = count_instructions(paths.bundle, cpu.qemu, p.profile.features or cpu.features,
                                     ctx.opts.timeout, paths.scratch / "count", paths.log)
    if "error" in counted:
        return {"status": "failed", "reason": counted["error"]}
    threads = ctx.opts.threads or p.profile.threads
    guess = estimate(Counts.from_dict(counted["counts"]), cpu, p.profile.clock_ghz, threads)
    return {"status": "ok", **guess.to_dict(),
            "counted": {k: counted[k] for k in ("cpu", "spread", "windows", "threads",
                                                "seconds")}}


# --------------------------------------------------------------------------- speed decisions
def speed_check(ctx, p: PlannedCell, baseline: Cell | None, paths: CellPaths) -> SpeedCheck:
    """The strategy loop's speed check for this cell, against ``baseline`` (the shipped fp32
    cell of the same profile and target)."""
    def check(attempt: Attempt, verified: Verified) -> tuple[Attempt, Verified]:
        gate = speed_gate(ctx.opts, p.profile, p.cell)
        if gate is None:
            return attempt, verified
        if baseline is None or baseline.status != "ok":
            return (replace(attempt, speed={"speedup": None, "min_speedup": gate, "note":
                                            "no fp32 bundle to compare with (its cell failed)"}),
                    verified)
        decision, device, host = decide(ctx, p, baseline, paths, gate)
        attempt = replace(attempt, device=device,
                          speed={**decision.to_dict(), "host": host})
        if decision.shipped:
            return attempt, verified
        reason = speed.describe(decision)
        return (replace(attempt, outcome="rejected", reason=reason),
                replace(verified, passed=False, reason=reason))
    return check


def decide(ctx, p: PlannedCell, baseline: Cell, paths: CellPaths, gate: float
           ) -> tuple[speed.Decision, dict, dict | None]:
    """The decision from the best source (the device estimate where both bundles have one,
    else host rounds), this bundle's device record, and the host comparison."""
    device = device_estimate(ctx, p, paths)
    fp32 = baseline.device or {}
    if device.get("status") == "ok" and fp32.get("status") == "ok":
        decision = speed.from_estimates(fp32["p50_ms"], device["p50_ms"], gate,
                                        device["cpu"])
        # the host's ratio beside the device's, for the report (not decided on)
        host = compare_on_host(ctx, p, ctx.stage / baseline.bundle, paths, gate, MIN_ROUNDS)
        return decision, device, host.to_dict()
    host = compare_on_host(ctx, p, ctx.stage / baseline.bundle, paths, gate, MAX_ROUNDS)
    return host, device, host.to_dict()


def compare_on_host(ctx, p: PlannedCell, fp32_bundle: Path, paths: CellPaths, gate: float,
                    max_rounds: int) -> speed.Decision:
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
                return speed.Decision("host", 0.0, 0.0, 0.0, gate, speed.ERROR,
                                      f"timing failed ({label}): {res.reason}", r)
            runs[label].append(res.result["latency_ms"]["p50"])
        if r + 1 >= (MIN_ROUNDS if gate > 0 or p.cell.auto else 1):
            decision = speed.from_host_rounds(runs["fp32"], runs["this"], gate)
            if decision.verdict != speed.UNDECIDED:
                break
    return decision


def best_latency(host: dict | None, device: dict | None, boards) -> dict | None:
    """The latency release gates use, from the best source: a board's own, else the device
    estimate (which has a p50 only), else the build host's."""
    board = next((b["latency"] for b in boards if b.get("status") == "ok"
                  and b.get("latency")), None)
    if board:
        return board
    if (device or {}).get("status") == "ok":
        p50 = device["p50_ms"]
        return {"p50": p50, "mean": p50, "estimated": True,
                "measured_on": f"estimate for {device['cpu']} @ {device['clock_ghz']:g} GHz"}
    return host


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
    latency = {**r["latency_ms"], "threads": r["threads"], "cold_start_ms": r["cold_start_ms"],
               "measured_on": "build host"}
    if len(results) > 1:
        latency["rounds_p50_ms"] = [x["latency_ms"]["p50"] for x in results]
    return Bench(latency, r["memory"], r["runtime"], seconds)


def marginal_note(speed_record: dict | None) -> str | None:
    """A note for a shipped cell whose host-timed gain is small (a device estimate's ratio
    is exact enough to need none)."""
    record = speed_record or {}
    speedup = record.get("speedup")
    if speedup is None or not record.get("min_speedup") or speedup >= MARGINAL_SPEEDUP \
            or record.get("source") != "host":
        return None
    return (f"only {speedup:.2f}× fp32's speed on the build host: shown faster within the "
            f"noise of {record.get('rounds')} interleaved rounds, but a small gain; raise "
            "--min-speedup to refuse such cells")


def choose_auto(cells: list[Cell]) -> None:
    """For --precision auto: per profile and target, mark the fastest ok cell (speedup over
    fp32 from the best source; fp32 itself is 1.0) and say why it won."""
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
        source = (best.speed or {}).get("source", "host")
        others = "; ".join(f"{c.precision} {speedup(c):.2f}×" if c.status == "ok" else
                           f"{c.precision} {c.status}" for c in group if c is not best)
        best.chosen = (f"fastest within budget: {speedup(best):.2f}× fp32's speed, "
                       f"{speed.SOURCES.get(source, source)} (others: {others})")
        for cell in group:
            cell.optional = cell is not best
