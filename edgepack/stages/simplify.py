"""Simplifiers (onnxsim, onnxsim folding only small constants, onnxslim) and the helpers that
check a rewritten model against the original: running an ONNX file, comparing outputs.

The preparation stage (``stages/preparation.py``) tries the simplifiers in order, keeps the
first whose result agrees with the original and does not bloat it, and records the others.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx

from edgepack.device.core import compare


def _import_onnxsim():
    """onnxsim, imported without torch: its package init tries ``import torch`` for an
    optional PPQ integration edgepack never uses, which costs ~1.5 s in every preparation.
    A torch already imported (a PyTorch model's import) is left alone."""
    if "torch" in sys.modules:
        import onnxsim

        return onnxsim
    sys.modules["torch"] = None  # an ImportError inside onnxsim's try/except
    try:
        import onnxsim
    finally:
        del sys.modules["torch"]
    return onnxsim


def _onnxsim(model: onnx.ModelProto) -> onnx.ModelProto:
    onnxsim = _import_onnxsim()
    simplified, ok = onnxsim.simplify(model)
    if not ok:
        raise RuntimeError("onnxsim's own check failed")
    return simplified


def _onnxsim_small_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnxsim folding only small constants: keeps quantized weights quantized."""
    onnxsim = _import_onnxsim()
    simplified, ok = onnxsim.simplify(model, tensor_size_threshold="64KB")
    if not ok:
        raise RuntimeError("onnxsim's own check failed")
    return simplified


def _onnxslim(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxslim

    return onnxslim.slim(model)


SIMPLIFIERS = {"onnxsim": _onnxsim, "onnxsim-small-constants": _onnxsim_small_constants,
               "onnxslim": _onnxslim}


def run_onnx(path: Path, feeds: list[dict[str, np.ndarray]]) -> dict[str, list[np.ndarray]]:
    """Outputs of an ONNX file on ONNX Runtime (CPU, default optimizations): per output, one
    array per feed."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    results = {name: [] for name in names}
    for feed in feeds:
        for name, value in zip(names, session.run(names, feed), strict=True):
            results[name].append(value)
    return results


def worst_difference(a: dict[str, list], b: dict[str, list]) -> dict:
    """The worst per-output comparison (lowest cosine or match, highest errors)."""
    worst = {"max_abs": 0.0, "rel_error": 0.0, "cosine": 1.0, "shape_ok": True}
    for name, ref in a.items():
        m = compare(ref, b[name]) if name in b else {"shape_ok": False}
        if not m["shape_ok"]:
            return {**worst, "shape_ok": False}
        if m.get("exact"):
            m = {"max_abs": 0.0 if m["mismatches"] == 0 else float("inf"), "cosine": m["match"]}
            m["rel_error"] = m["max_abs"]
        worst = {"max_abs": max(worst["max_abs"], m["max_abs"]),
                 "rel_error": max(worst["rel_error"], m["rel_error"]),
                 "cosine": min(worst["cosine"], m["cosine"]), "shape_ok": True}
    return worst
