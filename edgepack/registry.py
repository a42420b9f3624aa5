"""Where plugins are found (rather than listed), without importing any of them: the core
(profiles, the CLI's help) asks for names here; ``edgepack.targets`` imports a target's module
only when it is used.

A target is a module in ``edgepack/targets/`` that defines ``TARGET``; its name is the
module's name. Targets outside edgepack register through the entry point group
``edgepack.targets`` (``name = "package.module"`` or ``"package.module:OBJECT"``) or, for a
quick test, ``EDGEPACK_EXTRA_TARGETS="name=package.module[:OBJECT],..."`` (inherited by the
child processes that lower and run them).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import pkgutil
from functools import cache

TARGETS_PACKAGE = "edgepack.targets"
_NOT_TARGETS = {"base"}


@cache
def target_modules() -> dict[str, str]:
    """Target name -> module path, for every target this installation can find."""
    found = {}
    folder = importlib.util.find_spec(TARGETS_PACKAGE).submodule_search_locations
    for info in pkgutil.iter_modules(list(folder)):
        if not info.name.startswith("_") and info.name not in _NOT_TARGETS:
            found[info.name] = f"{TARGETS_PACKAGE}.{info.name}"
    for ep in importlib.metadata.entry_points(group="edgepack.targets"):
        found[ep.name] = ep.value
    for item in filter(None, os.environ.get("EDGEPACK_EXTRA_TARGETS", "").split(",")):
        name, _, module = item.partition("=")
        found[name.strip()] = module.strip()
    return dict(sorted(found.items()))


def target_names() -> list[str]:
    return list(target_modules())
