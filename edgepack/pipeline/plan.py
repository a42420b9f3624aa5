"""Plan the (profile × target × precision) matrix of one build, before any work.

A target named with ``--target`` is *requested*: anything that stops it (missing runtime or
toolchain, a profile that cannot run it, a precision it has no lowering for) is a usage error.
Targets that come from a profile's defaults and cannot be built here are *skipped*, with the
reason, and do not fail the build.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

from edgepack.errors import TargetError
from edgepack.pipeline.options import BuildOptions
from edgepack.profiles import DeviceProfile, load_profile
from edgepack.report.model import Cell
from edgepack.settings import AUTO
from edgepack.targets import get_target, target_names
from edgepack.targets.base import Strategy, Target


@dataclass
class PlannedCell:
    cell: Cell
    profile: DeviceProfile
    target: Target
    strategies: list[Strategy]


def default_profile() -> str:
    return "generic-arm64" if platform.machine() in ("aarch64", "arm64") else "x86-64"


def plan(opts: BuildOptions) -> list[PlannedCell]:
    """The build matrix; raises EdgepackError for any unknown or impossible request."""
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
            wanted = target.precisions if auto else opts.precisions or profile.default_precisions
            for precision in with_baseline(wanted):
                if explicit and opts.precisions and precision not in target.precisions:
                    raise TargetError(f"the {target.name} target has no {precision} lowering; "
                                      f"it has {', '.join(target.precisions)}")
                new = _cells(opts, profile, target, precision, why_not, bool(explicit))
                for planned in new:
                    planned.cell.auto = auto
                cells += new
    if opts.strategy is not None:
        _check_strategy_matches(opts, cells)
    return cells


def _check_strategy_matches(opts: BuildOptions, cells: list[PlannedCell]) -> None:
    pending = [p for p in cells if p.cell.status == "pending"]
    if pending and not any(opts.strategy in s.name for p in pending for s in p.strategies):
        names = sorted({s.name for p in pending for s in p.target.strategies(
            p.cell.precision, p.profile)})
        raise TargetError(f"--strategy '{opts.strategy}' matches none of the strategies of "
                          f"this build: {', '.join(names)}")


def with_baseline(precisions) -> list[str]:
    """The precisions to build, fp32 first: every other precision is timed against it."""
    precisions = list(dict.fromkeys(precisions))
    return ["fp32", *(p for p in precisions if p != "fp32")]


def _cells(opts: BuildOptions, profile: DeviceProfile, target: Target, precision: str,
           why_not: str | None, requested: bool) -> list[PlannedCell]:
    reason = why_not
    if reason is None and not target.available():
        reason = (f"{target.packages[0]} is not installed: "
                  f"pip install 'edgepack[{target.extra}]'")
    if reason is None:
        reason = target.missing_toolchain()
    if reason is None and precision not in target.precisions:
        reason = f"the {target.name} target has no {precision} lowering"
    variants = [None] if reason else target.variants(precision, profile)
    planned = []
    for variant in variants:
        cell = Cell(profile.name, target.name, precision, variant, requested=requested)
        if precision == "fp32" and opts.precisions != (AUTO,) and \
                "fp32" not in (opts.precisions or profile.default_precisions):
            cell.notes.append("built as the speed baseline of the other precisions")
        strategies = []
        if reason:
            cell.status, cell.reason = "skipped", reason
        else:
            strategies = _strategies(opts, target, precision, profile)
        planned.append(PlannedCell(cell, profile, target, strategies))
    return planned


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
