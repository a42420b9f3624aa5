"""Deployment targets: one plugin per runtime, found rather than listed.

A target is a module in this package that defines ``TARGET`` (a :class:`~edgepack.targets.base.
Target`); its name is the module's name. Targets outside edgepack register through the entry
point group ``edgepack.targets`` (``name = "package.module"`` or ``"package.module:OBJECT"``)
or, for a quick test, ``EDGEPACK_EXTRA_TARGETS="name=package.module[:OBJECT],..."`` (inherited
by the child processes that lower and run them). Finding targets imports nothing: a target's
module is imported when it is used, and it imports its runtime only inside its functions.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import pkgutil
from functools import cache
from pathlib import Path

from edgepack.errors import TargetError

_NOT_TARGETS = {"base"}


@cache
def target_modules() -> dict[str, str]:
    """Target name -> module path, for every target this installation can find."""
    found = {}
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if not info.name.startswith("_") and info.name not in _NOT_TARGETS:
            found[info.name] = f"{__name__}.{info.name}"
    for ep in importlib.metadata.entry_points(group="edgepack.targets"):
        found[ep.name] = ep.value
    for item in filter(None, os.environ.get("EDGEPACK_EXTRA_TARGETS", "").split(",")):
        name, _, module = item.partition("=")
        found[name.strip()] = module.strip()
    return dict(sorted(found.items()))


def target_names() -> list[str]:
    return list(target_modules())


def get_target(name: str):
    """The Target called ``name``; TargetError naming the known ones if there is none."""
    modules = target_modules()
    if name not in modules:
        raise TargetError(f"unknown target '{name}'; known targets: {', '.join(modules)}")
    module, _, attr = modules[name].partition(":")
    return getattr(importlib.import_module(module), attr or "TARGET")


def all_targets() -> list:
    return [get_target(name) for name in target_modules()]


def toolchain_groups() -> dict[str, list]:
    """Every isolated environment, by what it serves: a target's name (its converters) or an
    importer's framework (e.g. tensorflow)."""
    from edgepack.emulation import SYSROOT
    from edgepack.importers import all_importer_toolchains

    groups = {t.name: list(t.toolchains) for t in all_targets() if t.toolchains}
    for chain in all_importer_toolchains():
        groups.setdefault(chain.purpose, []).append(chain)
    groups[SYSROOT.purpose] = [SYSROOT]
    return groups


def toolchains_for(name: str) -> list:
    """The toolchains of a target or importer framework, or one toolchain by its own name."""
    from edgepack.errors import EdgepackError

    chains = toolchain_groups()
    if name in chains:
        return chains[name]
    for group in chains.values():
        for chain in group:
            if chain.name == name:
                return [chain]
    known = ", ".join([*chains, *(c.name for group in chains.values() for c in group)])
    raise EdgepackError(f"unknown toolchain '{name}'; known: {known or 'none'}")
