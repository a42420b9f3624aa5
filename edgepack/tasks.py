"""Task bodies that run inside child processes (see :mod:`edgepack.child`).

Each takes the JSON spec the parent wrote and returns a JSON-able dict.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgepack.artifact import TensorSpec
from edgepack.data import read_dataset_file
from edgepack.device import runner as device
from edgepack.profiles import load_profile
from edgepack.targets import get_target
from edgepack.targets.base import LowerOptions


def simplify(spec: dict) -> dict:
    from edgepack.stages.simplify import simplify_onnx

    data = read_dataset_file(Path(spec["feeds"]), spec["batch"])
    return simplify_onnx(Path(spec["src"]), Path(spec["dst"]), list(data.feeds()))


def lower(spec: dict) -> dict:
    target = get_target(spec["target"])
    calib = None
    if spec["calib"]:
        calib = read_dataset_file(Path(spec["calib"]), spec["batch"], spec["calib_kind"],
                                  spec["calib_source"])
    lowered = target.lower(Path(spec["model"]), spec["precision"],
                           load_profile(spec["profile"]), calib, Path(spec["out_dir"]),
                           LowerOptions(**spec["options"]))
    return vars(lowered)


def evaluate(spec: dict) -> dict:
    """Run the bundle's model over the eval data; save the stacked outputs (ONNX names)."""
    target = get_target(spec["target"])
    inputs = [TensorSpec.from_dict(d) for d in spec["inputs"]]
    data = read_dataset_file(Path(spec["data"]), spec["batch"])
    options = {**spec["options"], "io": {"inputs": spec["inputs"], "outputs": spec["outputs"]}}
    with target.runner(Path(spec["model"]), inputs, spec["threads"], options) as r:
        outputs: dict[str, list] = {}
        for feeds in data.feeds():
            for name, value in r.infer(feeds).items():
                outputs.setdefault(name, []).append(value)
        info = r.backend.info
    np.savez(spec["out"], **{k: np.concatenate(v) for k, v in outputs.items()})
    return {"runtime": info}


def bench(spec: dict) -> dict:
    """Time the bundle on its golden input in this fresh process (only its runtime loaded)."""
    return device.bench_bundle(Path(spec["bundle"]), spec["runs"], spec["min_time"],
                               spec["warmup"], spec["threads"])
