"""ONNX-level precision changes with ONNX Runtime's tools: fp16, dynamic int8, static int8.

Each function reads one ONNX file and writes another; the inputs and outputs stay float32.
ORT's quantizers write temporary files beside their input, so they get a private copy.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx

from edgepack.data import Dataset
from edgepack.stages.graph import default_opset

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


def to_fp16(src: Path, dst: Path) -> list[str]:
    """Convert weights and compute to float16, keeping float32 inputs and outputs."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    return ["fp16 weights and compute; float32 inputs and outputs (Cast at the edges)"]


DYNAMIC_MATMUL_OPS = ("MatMul", "Gemm", "Attention")
# the ops whose int8 kernels pay for their (re)quantization; elementwise ops and activations
# in int8 mostly add Quantize/Dequantize work
COMPUTE_OPS = ("Conv", "MatMul", "Gemm")


class NothingToQuantize(RuntimeError):
    """The model has none of the ops a quantization strategy quantizes."""


def quantize_int8_dynamic(src: Path, dst: Path, op_types: tuple[str, ...] | None = None
                          ) -> list[str]:
    """Weights to int8 ahead of time; activations quantized at run time (quantize_dynamic).
    ``op_types`` limits it to those ops (None: every op ORT can quantize, Conv included)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if op_types is not None:
        found = sum(n.op_type in op_types for n in onnx.load(str(src)).graph.node)
        if not found:
            raise NothingToQuantize(f"the model has no {'/'.join(op_types)} to quantize")
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "model.onnx"
        shutil.copyfile(src, copy)
        if op_types:  # MatMulInteger takes int8 weights per channel: faster and more accurate
            quantize_dynamic(copy, dst, weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=list(op_types))
            return [f"dynamic int8 ({'/'.join(op_types)} only, the rest in float): per-channel "
                    "int8 weights, activations quantized per call"]
        # ConvInteger on ORT's CPU provider runs only uint8 x uint8
        quantize_dynamic(copy, dst, weight_type=QuantType.QUInt8, per_channel=False)
    return ["dynamic int8 (every op): uint8 weights, activations quantized per call"]


INT4_BLOCK = 32  # weights per scale in weight-only int4 (the usual recipe for small models)
# weight-only int4 strategies: the share of weights kept at a higher precision, tried in order
# until the bundle verifies (all-MiniLM-L6-v2: 0 → cosine 0.965, 0.25 → 0.978, 0.5 → 0.991)
INT4_KEEP_SHARES = (0.0, 0.25, 0.5)


def int4_error(weight: np.ndarray, block: int = INT4_BLOCK) -> float:
    """Relative error of symmetric int4 round-to-nearest along the first axis (K), in blocks
    of ``block``: ||W - Q(W)|| / ||W||, the data-free measure of what int4 does to a weight."""
    k = weight.shape[0]
    w = np.pad(weight.reshape(k, -1), ((0, (-k) % block), (0, 0))).reshape(-1, block,
                                                                          weight[0].size)
    scale = np.abs(w).max(axis=1, keepdims=True) / 7
    scale[scale == 0] = 1
    q = np.clip(np.round(w / scale), -8, 7) * scale
    norm = float(np.linalg.norm(w))
    return float(np.linalg.norm(q - w)) / norm if norm else 0.0


def int4_strategy_name(share: float) -> str:
    return "int4" if not share else f"int4, {share:.0%} of weights kept higher"


class _Reader:
    """ORT CalibrationDataReader over a Dataset's feeds."""

    def __init__(self, data: Dataset) -> None:
        self.feeds = data.feeds()

    def get_next(self):
        return next(self.feeds, None)

    def rewind(self) -> None:  # pragma: no cover - not used by ORT's calibrators here
        pass


def quantize_int8_static(src: Path, dst: Path, calib: Dataset, method: str = "minmax",
                         op_types: tuple[str, ...] | None = None,
                         exclude: tuple[str, ...] = ()) -> list[str]:
    """Static QDQ int8, per-channel weights, activations calibrated on ``calib``; ``op_types``
    limits it to those ops, ``exclude`` leaves the named nodes in float."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    if op_types is not None and not any(n.op_type in op_types
                                        for n in onnx.load(str(src)).graph.node):
        raise NothingToQuantize(f"the model has no {'/'.join(op_types)} to quantize")
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(_opset13(src, Path(tmp))), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            prepared, dst, _Reader(calib), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=methods[method], op_types_to_quantize=list(op_types or []) or None,
            nodes_to_exclude=list(exclude) or None,
            extra_options={"CalibTensorRangeSymmetric": False},
        )
    which = f"{'/'.join(op_types)} only" if op_types else "every op"
    kept = f"; {len(exclude)} node(s) left in float: {', '.join(exclude[:8])}" if exclude else ""
    return [f"static int8 (QDQ, {which}): per-channel int8 weights, uint8 activations, "
            f"{method} calibration on {calib.samples} samples ({calib.kind}: {calib.source})"
            f"{kept}"]


def _opset13(src: Path, tmp: Path) -> Path:
    """``src``, or a copy converted to opset 13 when older (per-channel QDQ needs it)."""
    model = onnx.load(str(src))
    version = default_opset(model)
    if version is None or version >= 13:
        return src
    from onnx import version_converter

    out = tmp / "opset13.onnx"
    onnx.save(version_converter.convert_version(model, 13), str(out))
    return out


MAX_EXCLUDED_TENSORS = 32
SEARCH_SAMPLES = 16


def quantize_int8_excluding(src: Path, dst: Path, calib: Dataset, method: str,
                            tol: dict, op_types: tuple[str, ...] | None = None) -> list[str]:
    """Static int8 that meets ``tol`` (per-output cosine/relative error, as the build checks
    them) on the calibration samples: when quantizing everything misses it, the activation
    tensors whose quantization costs most (see stages/sensitivity.py) are left in float, 1, 2,
    4 ... of them, until it holds or the bound is hit (RuntimeError with the numbers)."""
    from edgepack.stages import sensitivity
    from edgepack.stages.simplify import run_onnx

    feeds = list(calib.head(SEARCH_SAMPLES).feeds())
    expected = run_onnx(src, feeds)
    notes = quantize_int8_static(src, dst, calib, method, op_types)
    ok, numbers = sensitivity.within_budget(expected, run_onnx(dst, feeds), tol)
    if ok:
        return notes + ["within budget on the calibration samples as it is"]
    ranking = sensitivity.rank(src, dst, feeds)
    k, tried = 1, []
    while k <= min(MAX_EXCLUDED_TENSORS, len(ranking)):
        tensors = ranking[:k]
        exclude = tuple(dict.fromkeys(n for t in tensors for n in t.nodes))
        notes = quantize_int8_static(src, dst, calib, method, op_types, exclude=exclude)
        ok, numbers = sensitivity.within_budget(expected, run_onnx(dst, feeds), tol)
        tried.append(f"{k}: {numbers}")
        if ok:
            return notes + [
                f"accuracy-aware: the {k} most sensitive tensor(s) kept in float ("
                + ", ".join(f"{t.tensor} {t.error:.3f}" for t in tensors[:8])
                + ") to meet the budget on the calibration samples"]
        k *= 2
    raise RuntimeError("int8 misses the budget even with the most sensitive tensors left in "
                       f"float (tensors kept: {'; '.join(tried[-2:])})")
