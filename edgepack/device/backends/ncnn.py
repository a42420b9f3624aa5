"""ncnn backend: ``model.ncnn.param`` + ``model.ncnn.bin`` on the CPU, through the ``ncnn`` wheel.

ncnn's ``Mat`` has no batch axis and holds at most four dimensions (c, d, h, w). The manifest
records, per tensor, the ncnn blob name (``in0``, ``out0``...) and, for inputs, the shape and
dtype ncnn takes (the ONNX shape without the batch axis pnnx chose, int32 for integer inputs);
outputs come back in the ONNX shape and dtype. ``options["ncnn_options"]`` holds the ``Option``
fields recorded at build time (fp16 storage and arithmetic on or off), set before loading.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np


class Backend:
    def __init__(self, model_path: Path, threads: int, options: dict) -> None:
        self.model_path, self.threads, self.options = model_path, threads, options
        self.net = None

    def load(self) -> dict:
        import ncnn

        net = ncnn.Net()
        settings = dict(self.options.get("ncnn_options", {}))
        for key, value in settings.items():
            if not hasattr(net.opt, key):
                raise RuntimeError(f"ncnn {ncnn.__version__} has no option '{key}'")
            setattr(net.opt, key, value)
        net.opt.num_threads = self.threads
        param, weights = Path(self.model_path), Path(self.model_path).with_suffix(".bin")
        if net.load_param(str(param)) != 0:
            raise RuntimeError(f"ncnn could not load {param.name} (a layer it does not have?)")
        if net.load_model(str(weights)) != 0:
            raise RuntimeError(f"ncnn could not load {weights.name}")
        self.net = net
        io = self.options["io"]
        self.inputs = [t for t in io["inputs"] if t.get("runtime_name")]
        self.outputs = io["outputs"]
        return {"runtime": "ncnn", "version": ncnn.__version__, "threads": self.threads,
                "inference_precision": _precision(ncnn, settings), "options": settings}

    def run(self, feeds: dict) -> dict:
        import ncnn

        ex = self.net.create_extractor()
        for t in self.inputs:
            arr = np.ascontiguousarray(np.reshape(feeds[t["name"]], t["runtime_shape"]),
                                       dtype=t["runtime_dtype"])
            # a Mat made from an array shares the array's memory, which ncnn's in-place
            # layers (an Abs or a ReLU right after the input) then crash on: ncnn's own copy
            ex.input(t["runtime_name"], ncnn.Mat(arr).clone())
        result = {}
        for t in self.outputs:
            status, mat = ex.extract(t["runtime_name"])
            if status != 0:
                raise RuntimeError(f"ncnn could not compute '{t['runtime_name']}' "
                                   f"(output '{t['name']}'): error {status}")
            arr = np.array(mat)
            if arr.size == int(np.prod(t["shape"])):  # ncnn drops unit and batch axes
                arr = arr.reshape(t["shape"])
            result[t["name"]] = arr.astype(t["dtype"], copy=False)
        return result

    def close(self) -> None:
        if self.net is not None:
            self.net.clear()
        self.net = None


def _precision(ncnn, settings: dict) -> str:
    """What ncnn computes in on this CPU with these options (it falls back silently)."""
    if settings.get("use_int8_inference"):
        return "int8"  # its quantized layers; the others in f32
    if not settings.get("use_fp16_storage"):
        return "f32"
    if platform.machine() in ("aarch64", "arm64"):
        if settings.get("use_fp16_arithmetic") and ncnn.cpu_support_arm_asimdhp():
            return "f16"
        return "f16 storage, f32 math"  # no asimdhp: fp16 arithmetic is skipped
    return "f32 math, f16 weights"  # x86: some layers keep fp16 weights (F16C)
