"""Deployment targets, one module per runtime, registered by name.

The registry maps a target name to the module that defines it, so that choosing a target
imports its runtime only when it is used (``import edgepack`` imports none of them).
"""

from __future__ import annotations

import importlib
import os

from edgepack.errors import TargetError
from edgepack.targets.base import Target

TARGETS: dict[str, str] = {
    "ort": "edgepack.targets.ort",
    "openvino": "edgepack.targets.openvino",
    "tflite": "edgepack.targets.tflite",
}

# third-party targets: EDGEPACK_EXTRA_TARGETS="name=package.module,..." (each module defines
# TARGET); the variable is inherited by the child processes that lower and run them
for _item in filter(None, os.environ.get("EDGEPACK_EXTRA_TARGETS", "").split(",")):
    _name, _, _module = _item.partition("=")
    TARGETS[_name.strip()] = _module.strip()


def get_target(name: str) -> Target:
    """The Target called ``name``; TargetError naming the known ones if there is none."""
    if name not in TARGETS:
        raise TargetError(f"unknown target '{name}'; known targets: {', '.join(TARGETS)}")
    return importlib.import_module(TARGETS[name]).TARGET
