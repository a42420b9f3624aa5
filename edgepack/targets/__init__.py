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

from edgepack.errors import TargetError
from edgepack.registry import target_modules, target_names

__all__ = ["all_targets", "get_target", "target_modules", "target_names"]

def get_target(name: str):
    """The Target called ``name``; TargetError naming the known ones if there is none."""
    modules = target_modules()
    if name not in modules:
        raise TargetError(f"unknown target '{name}'; known targets: {', '.join(modules)}")
    module, _, attr = modules[name].partition(":")
    return getattr(importlib.import_module(module), attr or "TARGET")


def all_targets() -> list:
    return [get_target(name) for name in target_modules()]
