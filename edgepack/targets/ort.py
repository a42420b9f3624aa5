"""ONNX Runtime target: ``.ort`` files (Fixed optimization style) for reduced-size runtimes."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import onnx

from edgepack.data import Dataset
from edgepack.errors import DataError
from edgepack.importers.onnx import graph_inputs, tensor_spec
from edgepack.profiles import DeviceProfile
from edgepack.stages import quantize
from edgepack.targets.base import Lowered, LowerOptions, Runner, Target


class OrtRunner(Runner):
    backend_name = "onnxruntime"


def to_ort_format(onnx_path: Path, out_dir: Path, arch: str) -> None:
    """Convert to ``model.ort`` + ``required_operators.config`` with the Fixed style.

    ``arch`` picks the optimizations: an x86 host would otherwise insert x86-only
    (NCHWc) kernels into a model meant for an ARM board.
    """
    from onnxruntime.tools.convert_onnx_models_to_ort import (
        OptimizationStyle,
        convert_onnx_models_to_ort,
    )

    with tempfile.TemporaryDirectory() as tmp:
        src_dir = Path(tmp) / "src"
        src_dir.mkdir()
        shutil.copyfile(onnx_path, src_dir / "model.onnx")
        convert_onnx_models_to_ort(
            src_dir, output_dir=Path(tmp) / "out", optimization_styles=[OptimizationStyle.Fixed],
            target_platform="arm" if arch == "aarch64" else "amd64",
        )
        for name in ("model.ort", "required_operators.config"):
            shutil.copyfile(Path(tmp) / "out" / name, out_dir / name)


class OrtTarget(Target):
    name = "ort"
    package = "onnxruntime"
    module = "onnxruntime"
    extra = "ort"
    runner = OrtRunner

    def lower(self, model: Path, precision: str, profile: DeviceProfile,
              calib: Dataset | None, out_dir: Path, options: LowerOptions) -> Lowered:
        with tempfile.TemporaryDirectory() as tmp:
            staged = Path(tmp) / "model.onnx"
            if precision == "fp32":
                shutil.copyfile(model, staged)
                notes = ["fp32: the simplified model, unchanged"]
            elif precision == "fp16":
                notes = quantize.to_fp16(model, staged)
            elif precision == "int8-dynamic":
                notes = quantize.quantize_int8_dynamic(model, staged)
            elif precision == "int8":
                if calib is None:
                    raise DataError("static int8 needs calibration data (--calib or --data)")
                notes = quantize.quantize_int8_static(model, staged, calib,
                                                      options.calibration_method)
            else:
                raise ValueError(precision)
            to_ort_format(staged, out_dir, profile.arch)
            io = onnx.load(str(staged))
        spec = [dict(tensor_spec(v).to_dict(), onnx_name=v.name, quantization=None)
                for v in graph_inputs(io)]
        outs = [dict(tensor_spec(v).to_dict(), onnx_name=v.name, quantization=None)
                for v in io.graph.output]
        notes.append(f"optimized for {'arm' if profile.arch == 'aarch64' else 'amd64'} "
                     "(Fixed optimization style)")
        return Lowered("model.ort", ["model.ort", "required_operators.config"], spec, outs,
                       notes=notes)


TARGET = OrtTarget()
