"""ONNX Runtime target: ``.ort`` files (Fixed optimization style) for reduced-size runtimes."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from edgepack import procs
from edgepack.data import Dataset
from edgepack.errors import DataError
from edgepack.profiles import DeviceProfile
from edgepack.settings import PRECISIONS, Precision
from edgepack.stages import quantize
from edgepack.targets.base import LowerContext, Lowered, Strategy, Target

# What `python -m onnxruntime.tools.convert_onnx_models_to_ort --optimization_style Fixed`
# does: optimize fully (without the x86-only NCHWc layout on ARM), save as ORT format, and
# list the operators a reduced ORT build must include.
_CONVERT = """
import pathlib, sys
import onnxruntime as ort
from onnxruntime.tools.ort_format_model.utils import create_config_from_models
so = ort.SessionOptions()
so.optimized_model_filepath = "model.ort"
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
so.add_session_config_entry("session.save_model_format", "ORT")
disabled = (["NchwcTransformer"] if sys.argv[1] == "arm" else []) + sys.argv[2:]
ort.InferenceSession("model.onnx", so, providers=["CPUExecutionProvider"],
                     disabled_optimizers=disabled or None)
create_config_from_models([pathlib.Path("model.ort")], pathlib.Path("required_operators.config"),
                          False)
"""


MAX_GROWTH = 1.5  # an .ort this much bigger than its .onnx was constant-folded out of shape
GROWTH_SLACK = 256 * 1024


def to_ort_format(onnx_path: Path, out_dir: Path, arch: str, timeout: float = 900.0
                  ) -> list[str]:
    """Convert to ``model.ort`` + ``required_operators.config`` (Fixed optimization style);
    returns notes.

    ``arch`` picks the optimizations: an x86 host would otherwise insert x86-only (NCHWc)
    kernels into a model meant for an ARM board. The conversion runs in a fresh interpreter
    with a minimal environment and no address randomization: ORT's serializer lays out the
    flatbuffer in hash-map order, seeded from addresses, so only then do identical models give
    byte-identical files. When constant folding would make the file much bigger than the
    ONNX model (it dequantizes pre-quantized weights), it is converted again without it.
    """
    source = onnx_path.stat().st_size
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(onnx_path, Path(tmp) / "model.onnx")
        _convert(Path(tmp), arch, [], timeout)
        notes = []
        folded = (Path(tmp) / "model.ort").stat().st_size
        if folded > source * MAX_GROWTH + GROWTH_SLACK:
            _convert(Path(tmp), arch, ["ConstantFolding"], timeout)
            notes.append(f"converted without constant folding: with it the .ort grew to "
                         f"{folded / 2**20:.1f} MiB from a {source / 2**20:.1f} MiB model "
                         "(it dequantizes pre-quantized weights)")
        for name in ("model.ort", "required_operators.config"):
            shutil.copyfile(Path(tmp) / name, out_dir / name)
    return notes


def _convert(folder: Path, arch: str, disabled: list[str], timeout: float) -> None:
    done = procs.run([sys.executable, "-I", "-c", _CONVERT,
                      "arm" if arch == "aarch64" else "amd64", *disabled],
                     what="the .ort conversion", timeout=timeout, cwd=folder,
                     env={"LC_ALL": "C"}, capture=True, no_aslr=True)
    if not done.ok:
        raise RuntimeError(f"{done.reason}: {done.last_line() or 'no output'}")


def _int4_weights(src: Path, dst: Path, keep_share: float,
                  block_size: int = quantize.INT4_BLOCK) -> list[str]:
    """Weight-only int4: each MatMul with a constant weight becomes ORT's ``MatMulNBits``
    (symmetric int4, one scale per ``block_size`` weights along K); activations stay float.
    ``keep_share`` of the weights, those int4 harms most, are stored in int8 instead (a second
    ``MatMulNBits`` pass with 8 bits, which reaches only the MatMuls the first one left)."""
    import onnx
    from onnx import numpy_helper
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = onnx.load(str(src))
    weights = {i.name: i for i in model.graph.initializer}
    candidates = [n for n in model.graph.node if n.op_type == "MatMul" and len(n.input) > 1
                  and n.input[1] in weights and len(weights[n.input[1]].dims) == 2]
    if not candidates:
        raise quantize.NothingToQuantize("the model has no MatMul with a constant 2-D weight "
                                         "to store in int4")
    for i, node in enumerate(candidates):  # exclusion goes by node name
        node.name = node.name or f"int4_matmul_{i}"
    harm = sorted(((quantize.int4_error(numpy_helper.to_array(weights[n.input[1]])), n.name)
                   for n in candidates), reverse=True)
    kept = [name for _, name in harm[:round(keep_share * len(harm))]]
    quantizer = MatMulNBitsQuantizer(model, bits=4, block_size=block_size, is_symmetric=True,
                                     nodes_to_exclude=kept)
    quantizer.process()
    out = quantizer.model.model
    packed = sum(n.op_type == "MatMulNBits" for n in out.graph.node)
    if not packed:
        raise quantize.NothingToQuantize("ORT's MatMulNBits quantizer left every MatMul in "
                                         "float (weights too small or not 2-D)")
    notes = [f"weight-only int4 (ORT MatMulNBits, symmetric, block {block_size}): {packed} of "
             f"{len(candidates)} MatMul weight(s) in int4, activations in float"]
    if kept:
        second = MatMulNBitsQuantizer(out, bits=8, block_size=block_size, is_symmetric=True)
        second.process()
        out = second.model.model
        eight = sum(n.op_type == "MatMulNBits" for n in out.graph.node) - packed
        notes.append(f"{eight} MatMul weight(s) with the largest int4 error stored in int8 "
                     f"instead (worst relative int4 error {harm[0][0]:.3f})")
    onnx.save(out, str(dst))
    return notes


class OrtTarget(Target):
    name = "ort"
    packages = ("onnxruntime",)
    module = "onnxruntime"
    extra = "ort"
    runtime = "onnxruntime"
    backend = "edgepack.device.backends.ort"
    standard_ops_only = False  # ONNX Runtime runs its com.microsoft ops
    precisions = PRECISIONS  # int4-weights: MatMulNBits

    def strategies(self, precision: str, profile: DeviceProfile) -> list[Strategy]:
        # quantizing Conv dynamically (ConvInteger) is slower than fp32 on ORT's CPU kernels;
        # MatMul/Gemm are where dynamic int8 pays. Static QDQ: every op, then only the compute
        # ops (int8 elementwise ops cost more than they gain), then only MatMul/Gemm; each
        # leaves the tensors whose quantization costs most in float until the budget holds,
        # and the speed gate keeps only what is faster than fp32.
        return {"int8-dynamic": [Strategy("dynamic-matmul",
                                          op_types=quantize.DYNAMIC_MATMUL_OPS),
                                 Strategy("dynamic-all")],
                "int4-weights": [Strategy(quantize.int4_strategy_name(share), keep_share=share)
                                 for share in quantize.INT4_KEEP_SHARES],
                "int8": [Strategy("qdq-all"),
                         Strategy("qdq-compute", op_types=quantize.COMPUTE_OPS),
                         Strategy("qdq-matmul", op_types=("MatMul", "Gemm"))],
                }.get(precision, [Strategy("default")])

    def lower(self, model: Path, precision: str, profile: DeviceProfile,
              calib: Dataset | None, out_dir: Path, ctx: LowerContext) -> Lowered:
        from edgepack.importers.onnx import io_specs

        with tempfile.TemporaryDirectory() as tmp:
            staged = Path(tmp) / "model.onnx"
            if precision == Precision.FP32:
                shutil.copyfile(model, staged)
                notes = ["fp32: the prepared model, unchanged"]
            elif precision == Precision.FP16:
                notes = quantize.to_fp16(model, staged)
            elif precision == Precision.INT8_DYNAMIC:
                notes = quantize.quantize_int8_dynamic(model, staged, ctx.strategy.op_types)
            elif precision == Precision.INT4_WEIGHTS:
                notes = _int4_weights(model, staged, ctx.strategy.keep_share)
            elif precision == Precision.INT8:
                if calib is None:
                    raise DataError("static int8 needs calibration data (--calib or --data)")
                notes = quantize.quantize_int8_excluding(model, staged, calib,
                                                         ctx.calibration_method,
                                                         ctx.tolerance, ctx.strategy.op_types)
            else:
                raise ValueError(precision)
            notes += to_ort_format(staged, out_dir, profile.arch, ctx.timeout)
            inputs, outputs = io_specs(staged)
        notes.append(f"optimized for {'arm' if profile.arch == 'aarch64' else 'amd64'} "
                     "(Fixed optimization style)")
        return Lowered("model.ort", ["model.ort", "required_operators.config"], inputs, outputs,
                       notes=notes)


TARGET = OrtTarget()
