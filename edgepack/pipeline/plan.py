"""Plan the (profile × target × precision) matrix of one build, before any work.

A target named with ``--target`` is *requested*: anything that stops it (missing runtime or
toolchain, a profile that cannot run it, a precision it has no lowering for) is a usage error.
Targets that come from a profile's defaults and cannot be built here are *skipped*, with the
reason, and do not fail the build.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, replace

from edgepack.cpus import Guest, guest_for
from edgepack.errors import TargetError
from edgepack.options import CellId
from edgepack.pipeline.options import BuildOptions
from edgepack.profiles import DeviceProfile, load_profile
from edgepack.report.model import Cell, Status
from edgepack.settings import AUTO, OPT_IN_PRECISIONS, Precision
from edgepack.targets import get_target, target_names
from edgepack.targets.base import Strategy, Target


@dataclass(frozen=True)
class PlannedCell:
    cell: Cell
    profile: DeviceProfile
    target: Target
    strategies: tuple[Strategy, ...]
    # the profile's CPU as emulation shows it (None: no CPU file names it), resolved once
    guest: Guest | None = None


def default_profile() -> str:
    return "generic-arm64" if platform.machine() in ("aarch64", "arm64") else "x86-64"


def plan(opts: BuildOptions) -> list[PlannedCell]:
    """The cells this invocation builds (``--cell`` selects some of the matrix)."""
    return select_cells(opts.cells, plan_all(opts))


def needs_calibration(cells: list[PlannedCell]) -> bool:
    """Whether the matrix calibrates (static int8): then ``--data`` is split into calibration
    and evaluation samples. Decided on the whole matrix, never on the cells one invocation
    builds, so that ``--cell`` parts and one build evaluate on the same samples."""
    return any(p.cell.precision == Precision.INT8 and p.cell.status == Status.PENDING
               for p in cells)


def plan_all(opts: BuildOptions) -> list[PlannedCell]:
    """The whole build matrix; raises EdgepackError for any unknown or impossible request."""
    profiles = [load_profile(p) for p in (opts.profiles or (default_profile(),))]
    explicit = [get_target(name) for name in opts.targets or ()]
    for target in explicit:
        target.require()
        missing = target.missing_toolchain()
        if missing:
            raise TargetError(missing)
    _check_target_options(opts, explicit)
    cells: list[PlannedCell] = []
    for profile in profiles:
        targets = explicit or [get_target(n) for n in profile.runtimes]
        for target in targets:
            why_not = target.check_profile(profile)
            if why_not and explicit:
                raise TargetError(f"cannot build '{target.name}' for '{profile.name}': {why_not}")
            auto = opts.precisions == (AUTO,)
            wanted = tuple(p for p in target.precisions if p not in OPT_IN_PRECISIONS) \
                if auto else opts.precisions or profile.default_precisions
            for precision in with_baseline(wanted):
                declined = _declined(target, precision, profile)
                if explicit and opts.precisions and precision not in target.precisions \
                        and declined is None:
                    raise TargetError(f"the {target.name} target has no {precision} lowering; "
                                      f"it has {', '.join(target.precisions)}")
                # a declined precision is skipped with the target's reason, never a failure
                cells += _cells(opts, profile, target, precision, why_not,
                                bool(explicit) and declined is None, auto)
    if opts.strategy is not None:
        _check_strategy_matches(opts, select_cells(opts.cells, cells))
    return cells


def group_id(cell: Cell) -> str:
    """The unit of a CI matrix: one profile and target, all its precisions (every other
    precision is timed against the fp32 bundle, so they are built on the same runner)."""
    return f"{cell.profile}/{cell.target}"


def select_cells(wanted: tuple[CellId, ...] | None, cells: list[PlannedCell]
                 ) -> list[PlannedCell]:
    """Only the cells named by ``--cell`` (PROFILE/TARGET or PROFILE/TARGET-PRECISION...),
    plus the fp32 baseline of each profile and target they belong to."""
    if not wanted:
        return cells
    keep: set[int] = set()
    for want in wanted:
        found = [i for i, p in enumerate(cells) if p.cell.profile == want.profile
                 and want.rest in (p.cell.target, p.cell.name)]
        if not found:
            known = sorted({group_id(p.cell) for p in cells}
                           | {p.cell.key for p in cells})
            raise TargetError(f"--cell {want}: no such cell in this build's plan; it has: "
                              f"{', '.join(known)} (see: edgepack plan)")
        keep.update(found)
    groups = {group_id(cells[i].cell) for i in keep}
    selected = []
    for i, p in enumerate(cells):
        if i in keep:
            selected.append(p)
        elif group_id(p.cell) in groups and p.cell.precision == Precision.FP32 \
                and not p.cell.variant:
            selected.append(replace(p, cell=p.cell.noted(
                "built as the speed baseline of the selected cells")))
    return selected


def matrix(opts: BuildOptions, cells: list[PlannedCell], model_id: str | None = None) -> dict:
    """The plan as a CI matrix: {"include": [{"cell": ID, ...}, ...]} (one entry per profile
    and target with something to build), and the skipped cells with their reasons."""
    include: dict[str, dict] = {}
    skipped = []
    for p in cells:
        gid = group_id(p.cell)
        if p.cell.status == Status.SKIPPED:
            skipped.append({"cell": p.cell.key, "reason": p.cell.reason})
            continue
        entry = include.setdefault(gid, {
            "cell": f"{model_id}/{gid}" if model_id else gid, "model": opts.name,
            "profile": p.cell.profile, "target": p.cell.target, "precisions": []})
        if p.cell.precision not in entry["precisions"]:
            entry["precisions"].append(p.cell.precision)
    return {"include": list(include.values()), "skipped": skipped}


def _check_strategy_matches(opts: BuildOptions, cells: list[PlannedCell]) -> None:
    pending = [p for p in cells if p.cell.status == Status.PENDING]
    if pending and not any(opts.strategy in s.name for p in pending for s in p.strategies):
        names = sorted({s.name for p in pending for s in p.target.strategies(
            p.cell.precision, p.profile)})
        raise TargetError(f"--strategy '{opts.strategy}' matches none of the strategies of "
                          f"this build: {', '.join(names)}")


def with_baseline(precisions) -> list[str]:
    """The precisions to build, fp32 first: every other precision is timed against it."""
    precisions = list(dict.fromkeys(precisions))
    return [Precision.FP32, *(Precision(p) for p in precisions if p != Precision.FP32)]


def _cells(opts: BuildOptions, profile: DeviceProfile, target: Target, precision: Precision,
           why_not: str | None, requested: bool, auto: bool) -> list[PlannedCell]:
    reason = why_not
    if reason is None and not target.available():
        reason = (f"{target.packages[0]} is not installed: "
                  f"pip install 'edgepack[{target.extra}]'")
    if reason is None:
        reason = target.missing_toolchain()
    if reason is None and precision not in target.precisions:
        reason = (_declined(target, precision, profile)
                  or f"the {target.name} target has no {precision} lowering")
    defaulted = False  # a precision the user did not name, skipped: never fails the build
    if reason is None and precision == Precision.INT8 and not _has_calibration(opts) \
            and Precision.INT8 not in (opts.precisions or ()):
        defaulted = True
        came = ("--precision auto" if opts.precisions == (AUTO,) else
                f"profile {profile.name}'s default precisions")
        reason = (f"static int8 needs calibration data and none was given (int8 came from "
                  f"{came}): pass --data or --calib FILE to build it")
    variants = [None] if reason else target.variants(precision, profile)
    planned = []
    guest = guest_for(profile.cpu, profile.features)
    baseline = precision == Precision.FP32 and opts.precisions != (AUTO,) and \
        Precision.FP32 not in (opts.precisions or profile.default_precisions)
    for variant in variants:
        cell = Cell(profile.name, target.name, precision, variant,
                    status=Status.SKIPPED if reason else Status.PENDING, reason=reason,
                    requested=requested and not defaulted, auto=auto,
                    notes=("built as the speed baseline of the other precisions",)
                    if baseline else ())
        strategies = [] if reason else _strategies(opts, target, precision, profile)
        planned.append(PlannedCell(cell, profile, target, tuple(strategies), guest))
    return planned


def _has_calibration(opts: BuildOptions) -> bool:
    return bool(opts.data or opts.calib or opts.allow_synthetic_calibration)


def _declined(target: Target, precision: str, profile: DeviceProfile) -> str | None:
    """The target's reason for building no bundle of a precision it has no lowering for."""
    if precision in target.precisions:
        return None
    return target.declines(precision, profile)


def _strategies(opts: BuildOptions, target: Target, precision: str,
                profile: DeviceProfile) -> list[Strategy]:
    """The target's strategies, narrowed by --strategy where it names any of them."""
    found = target.strategies(precision, profile)
    chosen = [s for s in found if opts.strategy is not None and opts.strategy in s.name]
    return chosen or found


def _check_target_options(opts: BuildOptions, explicit: list[Target]) -> None:
    """Each target option given belongs to a target, and has a valid value."""
    owners: dict[str, list] = {}
    for name in target_names():
        for option in get_target(name).options:
            owners.setdefault(option.name, []).append((name, option))
    for key, value in opts.target_options.items():
        if key not in owners:
            raise TargetError(f"unknown target option '{key}'")
        names = [name for name, _ in owners[key]]
        option = owners[key][0][1]
        option.check(value)
        if explicit and not set(names) & {t.name for t in explicit}:
            raise TargetError(f"{option.flag} is an option of the {', '.join(names)} target, "
                              f"which this build does not include (--target "
                              f"{','.join(opts.targets)})")


def target_options_for(opts: BuildOptions, target: Target) -> dict:
    """The values of ``target``'s own options in this build."""
    mine = {o.name: o.default for o in target.options}
    mine.update({k: v for k, v in opts.target_options.items() if k in mine})
    return mine
