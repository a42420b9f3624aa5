"""The data behind ``edgepack debug-accuracy``: which tensors int8 hurts most."""

from __future__ import annotations

import tempfile
from pathlib import Path

from edgepack.errors import DataError, ModelError
from edgepack.importers import detect_format
from edgepack.pipeline.options import BuildOptions, validate
from edgepack.pipeline.prepare import prepare


def rank_int8(model: Path, data: Path | None, calib: Path | None,
              input_shapes: dict, fixed_inputs: dict, method: str) -> dict:
    """Prepare the model as a build would, quantize every op (static QDQ) and rank the
    quantized activations by the error their quantization adds on the calibration samples."""
    from edgepack.stages import quantize, sensitivity
    from edgepack.stages.simplify import run_onnx

    if data is None and calib is None:
        raise DataError("debug-accuracy needs calibration data: pass --calib or --data")
    opts = BuildOptions(model=model, data=data, calib=calib, input_shapes=input_shapes,
                        fix_inputs=fixed_inputs, calibration=method,
                        output=Path(tempfile.gettempdir()) / "edgepack-debug")
    validate(opts)
    detect_format(model)
    with tempfile.TemporaryDirectory(prefix="edgepack-debug-") as tmp:
        work = Path(tmp)
        prepared = prepare(opts, True, work, work / "stage" / opts.name, lambda message: None)
        if prepared.onnx_failure:
            raise ModelError(f"debug-accuracy ranks the ONNX model's tensors, and exporting "
                             f"{Path(str(model)).name} to ONNX failed: {prepared.onnx_failure}")
        calib_set = prepared.calib.only(
            i.name for i in prepared.reference.inputs if i.name not in fixed_inputs)
        qdq = work / "int8.onnx"
        quantize.quantize_int8_static(prepared.model, qdq, calib_set, method)
        feeds = list(calib_set.head(quantize.SEARCH_SAMPLES).feeds())
        expected = run_onnx(prepared.model, feeds)
        _, numbers = sensitivity.within_budget(expected, run_onnx(qdq, feeds), {
            "min_cosine": 0.0, "max_rel_error": float("inf"), "min_match": 0.0})
        ranking = sensitivity.rank(prepared.model, qdq, feeds)
    return {"model": str(model), "samples": len(feeds), "end_to_end": numbers,
            "ranking": [r.to_dict() for r in ranking]}
