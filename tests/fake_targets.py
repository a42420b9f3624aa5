"""Fake targets for testing the pipeline's own logic, beside the real ones.

They wrap the real ORT lowering and misbehave on purpose: one writes a numerically wrong
model (verification must reject it), one crashes on fp16 and hangs on int8-dynamic (only
those cells may fail). Registered with EDGEPACK_EXTRA_TARGETS.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from edgepack.targets.ort import OrtTarget, to_ort_format
from edgepack.targets.tflite import TfliteTarget


class _Fake(OrtTarget):
    def check_profile(self, profile):
        return None  # any profile may "run" a fake target


class WrongWeights(_Fake):
    """Lowers correctly, then scales the first weight tensor by 1.5 and re-writes model.ort."""

    name = "wrong"

    def lower(self, model, precision, profile, calib, out_dir, ctx):
        lowered = super().lower(model, precision, profile, calib, out_dir, ctx)
        m = onnx.load(str(model))
        init = next(i for i in m.graph.initializer if len(i.dims) == 4)
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(1.5),
                                              init.name))
        with tempfile.TemporaryDirectory() as tmp:
            broken = Path(tmp) / "m.onnx"
            onnx.save(m, str(broken))
            to_ort_format(broken, out_dir, profile.arch)
        return lowered


class Misbehaving(_Fake):
    name = "misbehaving"

    def lower(self, model, precision, profile, calib, out_dir, ctx):
        if precision == "fp16":
            os.abort()
        if precision == "int8-dynamic":
            time.sleep(3600)
        return super().lower(model, precision, profile, calib, out_dir, ctx)


WRONG = WrongWeights()
MISBEHAVING = Misbehaving()


class WrongTflite(TfliteTarget):
    """Converts a copy of the model whose first conv weights are scaled by 1.5, with the real
    onnx2tf strategies: a valid .tflite with wrong numbers, written with exit code 0."""

    name = "wrongtflite"

    def check_profile(self, profile):
        return None

    def lower(self, model, precision, profile, calib, out_dir, ctx):
        m = onnx.load(str(model))
        init = next(i for i in m.graph.initializer if len(i.dims) == 4)
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(1.5),
                                              init.name))
        broken = Path(ctx.cache_dir).parent / "wrong.onnx"
        broken.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(m, str(broken))
        return super().lower(broken, precision, profile, calib, out_dir,
                             replace(ctx, cache_dir=str(Path(ctx.cache_dir) / "wrong")))


WRONG_TFLITE = WrongTflite()
