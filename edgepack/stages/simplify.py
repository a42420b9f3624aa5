"""Simplify an ONNX model (onnxsim, onnxslim as fallback) and keep it only if it still agrees.

A simplifier that fails, or whose output differs from the original beyond tolerance on the
sample inputs, is recorded and the original model is kept.
"""

from __future__ import annotations

import importlib.metadata
import shutil
from pathlib import Path

import numpy as np
import onnx

from edgepack.device.core import compare

# the simplified model must match the original this closely on every output
SIMPLIFY_MAX_REL_ERROR = 1e-4


def _onnxsim(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxsim

    simplified, ok = onnxsim.simplify(model)
    if not ok:
        raise RuntimeError("onnxsim's own check failed")
    return simplified


def _onnxslim(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxslim

    return onnxslim.slim(model)


SIMPLIFIERS = {"onnxsim": _onnxsim, "onnxslim": _onnxslim}


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


def simplify_onnx(src: Path, dst: Path, feeds: list[dict[str, np.ndarray]]) -> dict:
    """Write a simplified copy of ``src`` to ``dst`` (or the original if none is acceptable).

    Returns the stage record: tool used, node counts, the check's numbers, and for every
    simplifier tried, why it was rejected.
    """
    original = onnx.load(str(src))
    expected = run_onnx(src, feeds)
    record = {"stage": "simplify", "nodes_before": len(original.graph.node), "attempts": []}
    for name, simplify in SIMPLIFIERS.items():
        tool = name
        try:
            tool = f"{name} {importlib.metadata.version(name)}"
            model = simplify(onnx.load(str(src)))
            onnx.checker.check_model(model)
            onnx.save(model, str(dst))
            diff = worst_difference(expected, run_onnx(dst, feeds))
        except Exception as e:  # any simplifier failure keeps the original; it is recorded
            record["attempts"].append({"tool": tool, "outcome": f"failed: {type(e).__name__}: "
                                       f"{str(e).strip()[:200]}"})
            continue
        ok = diff["shape_ok"] and diff["rel_error"] <= SIMPLIFY_MAX_REL_ERROR
        record["attempts"].append({"tool": tool, "outcome": "accepted" if ok else
                                   f"rejected: output differs (relative error "
                                   f"{diff['rel_error']:.3g})", **diff})
        if ok:
            return {**record, "status": "ok", "tool": tool, "nodes_after": len(model.graph.node),
                    "check": diff}
    shutil.copyfile(src, dst)
    return {**record, "status": "kept-original", "tool": None,
            "nodes_after": record["nodes_before"],
            "reason": "; ".join(a["tool"] + ": " + a["outcome"] for a in record["attempts"])}
