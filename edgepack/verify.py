"""Compare a bundle's outputs with the FP32 reference and decide whether it passes.

Per output: the shape first, then (from the device runner's core, so the host's gates and the
bundle's selftest make the same decision) exact equality for integer outputs, or max abs,
mean abs, relative max error and cosine similarity. For classifiers (a float output whose last
axis scores classes): top-1 agreement with the reference, and top-1 accuracy of both when
labels are given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgepack.device import core
from edgepack.profiles import AccuracyBudget


@dataclass(frozen=True)
class Gate:
    """One check of one number against its limit."""

    name: str  # e.g. "logits.cosine"
    value: float
    limit: float
    kind: str  # "min" or "max"

    @property
    def ok(self) -> bool:
        return core.passes(self.value, self.limit, self.kind)

    def describe(self) -> str:
        op = ">=" if self.kind == "min" else "<="
        return f"{self.name} {self.value:.6g} (needs {op} {self.limit:g})"

    def to_dict(self) -> dict:
        return {"name": self.name, "value": self.value, "limit": self.limit, "kind": self.kind,
                "ok": self.ok}


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


def compare_outputs(reference: dict[str, list], actual: dict[str, list],
                    labels: np.ndarray | None) -> dict:
    """Per-output numbers of ``actual`` against ``reference`` (one array per sample)."""
    per_output = {}
    for name, ref in reference.items():
        out = actual.get(name)
        if out is None:
            per_output[name] = {"shape_ok": False, "error": "output missing"}
            continue
        m = core.compare(ref, out)
        rows = class_rows(ref) if m.get("shape_ok") and not m.get("exact") else None
        if rows is not None and is_classifier(name, rows, labels):
            got = class_rows(out)
            m["top1_agreement"] = float(np.mean(np.argmax(rows, 1) == np.argmax(got, 1)))
            if labels is not None and len(labels) == len(rows):
                m["top1_reference"] = top1_accuracy(rows, labels)
                m["top1"] = top1_accuracy(got, labels)
                m["top1_drop_points"] = (m["top1_reference"] - m["top1"]) * 100.0
        per_output[name] = m
    return per_output


def tolerance(budget: AccuracyBudget) -> dict:
    """The per-output tolerance a bundle's selftest applies (``device.core.output_checks``)."""
    return {"min_cosine": budget.min_cosine, "max_rel_error": budget.max_rel_error,
            "min_match": budget.min_top1_agreement}


def accuracy_gates(per_output: dict, budget: AccuracyBudget) -> list[Gate]:
    """The gates a cell must hold, from the precision's budget."""
    gates = []
    tol = tolerance(budget)
    for name, m in per_output.items():
        gates += [Gate(*check) for check in core.output_checks(name, m, tol)]
        if "top1_agreement" in m:
            gates.append(Gate(f"{name}.top1_agreement", m["top1_agreement"],
                              budget.min_top1_agreement, "min"))
        if "top1_drop_points" in m:
            gates.append(Gate(f"{name}.top1_drop_points", m["top1_drop_points"],
                              budget.max_top1_drop, "max"))
    return gates
