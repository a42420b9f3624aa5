"""Fake targets for testing the pipeline's own logic, beside the real ones.

They wrap the real ORT lowering and misbehave on purpose: one writes a numerically wrong
model (verification must reject it), one crashes on fp16 and hangs on int8-dynamic (only
those cells may fail), one ships a backend whose selftest hangs, one exits without a result,
one has three strategies (unavailable, wrong, right). Registered with
EDGEPACK_EXTRA_TARGETS="name=tests.fake_targets:OBJECT".
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from edgepack.targets.base import Strategy
from edgepack.targets.ort import OrtTarget, to_ort_format
from edgepack.targets.tflite import TfliteTarget


class _Fake(OrtTarget):
    def check_profile(self, profile):
        return None  # any profile may "run" a fake target


def _write_wrong(model, out_dir, profile):
    """Re-write model.ort from a copy whose first weight tensor is scaled by 1.5."""
    m = onnx.load(str(model))
    init = next(i for i in m.graph.initializer if len(i.dims) >= 2)
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(1.5),
                                          init.name))
    with tempfile.TemporaryDirectory() as tmp:
        broken = Path(tmp) / "m.onnx"
        onnx.save(m, str(broken))
        to_ort_format(broken, out_dir, profile.arch)


class WrongWeights(_Fake):
    """Lowers correctly, then scales the first weight tensor by 1.5 and re-writes model.ort."""

    name = "wrong"

    def lower(self, model, precision, profile, calib, out_dir, ctx):
        lowered = super().lower(model, precision, profile, calib, out_dir, ctx)
        _write_wrong(model, out_dir, profile)
        return lowered


class HangingSelftest(_Fake):
    """A correct .ort whose bundle backend hangs in the device selftest."""

    name = "hangselftest"
    backend = "tests.fake_backend_hang"


class NoResult(_Fake):
    """A lowering process that exits 0 without writing its result."""

    name = "noresult"

    def lower(self, model, precision, profile, calib, out_dir, ctx):
        os._exit(0)


class ThreeStrategies(_Fake):
    """'missing' cannot run here, 'wrong' writes wrong weights, 'right' is correct."""

    name = "strategies"

    def strategies(self, precision, profile):
        return [Strategy("missing", "its converter is not installed"), Strategy("wrong"),
                Strategy("right")]

    def lower(self, model, precision, profile, calib, out_dir, ctx):
        lowered = super().lower(model, precision, profile, calib, out_dir, ctx)
        if ctx.strategy.name == "wrong":
            _write_wrong(model, out_dir, profile)
        return lowered


class Misbehaving(_Fake):
    name = "misbehaving"

    def lower(self, model, precision, profile, calib, out_dir, ctx):
        if precision == "fp16":
            os.abort()
        if precision == "int8-dynamic":  # hang, with a grandchild in a session of its own
            subprocess.Popen(["sleep", "3600"], start_new_session=True)
            time.sleep(3600)
        return super().lower(model, precision, profile, calib, out_dir, ctx)


WRONG = WrongWeights()
MISBEHAVING = Misbehaving()
HANG_SELFTEST = HangingSelftest()
NO_RESULT = NoResult()
THREE_STRATEGIES = ThreeStrategies()


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
