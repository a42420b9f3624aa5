"""ONNX-level precision changes with ONNX Runtime's tools: fp16, dynamic int8, static int8.

Each function reads one ONNX file and writes another; the inputs and outputs stay float32.
ORT's quantizers write temporary files beside their input, so they get a private copy.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import onnx

from edgepack.data import Dataset

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


def to_fp16(src: Path, dst: Path) -> list[str]:
    """Convert weights and compute to float16, keeping float32 inputs and outputs."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    return ["fp16 weights and compute; float32 inputs and outputs (Cast at the edges)"]


def quantize_int8_dynamic(src: Path, dst: Path) -> list[str]:
    """Weights to int8 ahead of time; activations quantized at run time (quantize_dynamic)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "model.onnx"
        shutil.copyfile(src, copy)
        # ConvInteger on ORT's CPU provider runs only uint8 x uint8
        quantize_dynamic(copy, dst, weight_type=QuantType.QUInt8, per_channel=False)
    return ["dynamic int8: uint8 weights, activations quantized per call"]


class _Reader:
    """ORT CalibrationDataReader over a Dataset's feeds."""

    def __init__(self, data: Dataset) -> None:
        self.feeds = data.feeds()

    def get_next(self):
        return next(self.feeds, None)

    def rewind(self) -> None:  # pragma: no cover - not used by ORT's calibrators here
        pass


def quantize_int8_static(src: Path, dst: Path, calib: Dataset, method: str = "minmax") -> list[str]:
    """Static QDQ int8, per-channel weights, activations calibrated on ``calib``."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            prepared, dst, _Reader(calib), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=methods[method],
            extra_options={"CalibTensorRangeSymmetric": False},
        )
    return [f"static int8 (QDQ): per-channel int8 weights, uint8 activations, {method} "
            f"calibration on {calib.samples} samples ({calib.kind}: {calib.source})"]
