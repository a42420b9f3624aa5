"""Compare a bundle's outputs with the FP32 reference and decide whether it passes.

Per output: the shape first, then (from the device runner's core, so the host's gates and the
bundle's selftest make the same decision) exact equality for integer outputs, or max abs,
mean abs, relative max error and cosine similarity. For classifiers (a float output whose last
axis scores classes): top-1 agreement with the reference, and top-1 accuracy of both when
labels are given.
"""

from __future__ import annotations

import numpy as np

from edgepack.device import core
from edgepack.gates import Gate
from edgepack.profiles import AccuracyBudget

CLASSIFIER_NAMES = ("logit", "prob", "score", "class", "pred")


def class_rows(values: list[np.ndarray]) -> np.ndarray | None:
    """An output's samples as rows of class scores ``[rows, classes]``, or None when it
    cannot be one (not float, ragged, a scalar or a single score per row)."""
    if not values or len({v.shape for v in values}) != 1:
        return None
    stacked = np.stack(values)
    if stacked.dtype.kind != "f" or stacked.ndim < 2 or stacked.shape[-1] < 2:
        return None
    return stacked.reshape(-1, stacked.shape[-1])


def is_classifier(name: str, rows: np.ndarray, labels: np.ndarray | None) -> bool:
    """Rows of class scores that the labels index, or whose name says they are class scores;
    an embedding ([N, 384] 'embedding') is not one, its argmax means nothing."""
    if labels is not None and len(labels) == len(rows) and labels.max() < rows.shape[1]:
        return True
    return rows.ndim == 2 and any(word in name.lower() for word in CLASSIFIER_NAMES)


def top1_accuracy(rows: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(rows, axis=1) == labels))


def detect_kind(values: list[np.ndarray]) -> tuple[str, str]:
    """How an output is compared (device.core.OUTPUT_KINDS), and why, from the reference's
    values: a "map" is one channel of probabilities or scores in [0, 1] over a grid of at
    least 8×8 (a text detector's map); a "sequence" is several rows of class probabilities
    over the last axis, each summing to 1 (a recognizer's per-step softmax); anything else is
    compared by its values."""
    if not values or len({v.shape for v in values}) != 1 or values[0].dtype.kind != "f":
        return "values", "detected"
    stacked = np.stack(values)
    shape = values[0].shape
    if not (np.isfinite(stacked).all() and stacked.min() >= 0 and stacked.max() <= 1):
        return "values", "detected"
    # rows that each sum to 1 first: a [1, steps, classes] softmax is a grid as well
    steps = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    if steps >= 2 and shape[-1] >= 2 and np.allclose(stacked.sum(-1), 1.0, atol=1e-3):
        return "sequence", (f"detected: {steps} rows of {shape[-1]} class probabilities "
                            "(each sums to 1)")
    grid = [d for d in shape if d > 1]
    if len(grid) == 2 and min(grid) >= 8 and list(shape[-2:]) == grid:
        return "map", f"detected: a one-channel map of values in [0, 1] ({grid[0]}×{grid[1]})"
    return "values", "detected"


def output_kinds(reference: dict[str, list], declared: dict[str, str]) -> dict[str, tuple]:
    """Each output's (kind, why): as the profile declares it ([accuracy.outputs]), else
    detected from the reference's values."""
    return {name: (declared[name], "declared in the profile's [accuracy.outputs]")
            if name in declared else detect_kind(values) for name, values in reference.items()}


def compare_outputs(reference: dict[str, list], actual: dict[str, list],
                    labels: np.ndarray | None, kinds: dict[str, tuple] | None = None) -> dict:
    """Per-output numbers of ``actual`` against ``reference`` (one array per sample),
    compared as ``kinds`` says (see output_kinds; default: by their values)."""
    per_output = {}
    for name, ref in reference.items():
        out = actual.get(name)
        if out is None:
            per_output[name] = {"shape_ok": False, "error": "output missing"}
            continue
        kind, why = (kinds or {}).get(name, ("values", "detected"))
        m = core.compare(ref, out, kind)
        if kind != "values" and "kind" in m:
            m["kind_source"] = why
        # (a map's rows are not class scores; a sequence's steps have their own agreement)
        rows = class_rows(ref) if m.get("shape_ok") and not m.get("exact") \
            and kind == "values" else None
        if rows is not None and is_classifier(name, rows, labels):
            got = class_rows(out)
            m["top1_agreement"] = float(np.mean(np.argmax(rows, 1) == np.argmax(got, 1)))
            if labels is not None and len(labels) == len(rows):
                m["top1_reference"] = top1_accuracy(rows, labels)
                m["top1"] = top1_accuracy(got, labels)
                m["top1_drop_points"] = (m["top1_reference"] - m["top1"]) * 100.0
        per_output[name] = m
    return per_output


def tolerance(budget: AccuracyBudget, kinds: dict[str, tuple] | None = None) -> dict:
    """The per-output tolerance a bundle's selftest applies (``device.core.output_checks``),
    with the outputs not compared by their values and how they are (``kinds``)."""
    return {"min_cosine": budget.min_cosine, "max_rel_error": budget.max_rel_error,
            "min_match": budget.min_top1_agreement, "min_map_iou": budget.min_map_iou,
            "max_floor_rel_error": budget.max_floor_rel_error,
            "kinds": {n: k for n, (k, _) in (kinds or {}).items() if k != "values"}}


def accuracy_gates(per_output: dict, budget: AccuracyBudget) -> list[Gate]:
    """The gates a cell must hold, from the precision's budget."""
    gates = []
    tol = tolerance(budget)  # (each output's kind is in its numbers)
    for name, m in per_output.items():
        gates += [Gate.check(*check) for check in core.output_checks(name, m, tol)]
        if "top1_agreement" in m:
            gates.append(Gate.check(f"{name}.top1_agreement", m["top1_agreement"],
                                    budget.min_top1_agreement, "min"))
        if "top1_drop_points" in m:
            gates.append(Gate.check(f"{name}.top1_drop_points", m["top1_drop_points"],
                                    budget.max_top1_drop, "max"))
    return gates
