"""The plain ONNX file, as prepared, for a full ONNX Runtime install (no .ort conversion).

A worked example of adding a target: tests/test_structure.py copies this file to
edgepack/targets/onnxfile.py in a copy of the source tree (one of the five files).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from edgepack.importers.onnx import io_specs
from edgepack.targets.base import Lowered, Target


class OnnxFileTarget(Target):
    name = "onnxfile"
    packages = ("onnxruntime",)
    module = "onnxruntime"
    extra = "onnxfile"
    runtime = "onnxruntime"
    backend = "edgepack.device.backends.onnxfile"
    precisions = ("fp32",)

    def lower(self, model, precision, profile, calib, out_dir, ctx) -> Lowered:
        shutil.copyfile(model, Path(out_dir) / "model.onnx")
        inputs, outputs = io_specs(Path(out_dir) / "model.onnx")
        return Lowered("model.onnx", ["model.onnx"], inputs, outputs,
                       notes=["the prepared ONNX model, unchanged"])


TARGET = OnnxFileTarget()
