"""Compare a bundle's outputs with the FP32 reference and decide whether it passes.

Per output: the shape first, then max abs error, mean abs error, relative max error and
cosine similarity. For classifiers (a 2-D float output [N, classes]): top-1 agreement with
the reference, and top-1 accuracy of both when labels are given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgepack.device.runner import compare
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
        # written so that NaN fails
        if self.kind == "min":
            return bool(self.value >= self.limit)
        return bool(self.value <= self.limit)

    def describe(self) -> str:
        op = ">=" if self.kind == "min" else "<="
        return f"{self.name} {self.value:.6g} (needs {op} {self.limit:g})"

    def to_dict(self) -> dict:
        return {"name": self.name, "value": self.value, "limit": self.limit, "kind": self.kind,
                "ok": self.ok}


CLASSIFIER_NAMES = ("logit", "prob", "score", "class", "pred")


def is_classifier_output(name: str, arr: np.ndarray, labels: np.ndarray | None) -> bool:
    """A 2-D float [N, classes] output that labels index, or whose name says it is class
    scores; an embedding ([N, 384] 'embedding') is not one, its argmax means nothing."""
    if not (arr.ndim == 2 and arr.shape[1] > 1 and arr.dtype.kind == "f"):
        return False
    if labels is not None and len(labels) == len(arr) and labels.max() < arr.shape[1]:
        return True
    return any(word in name.lower() for word in CLASSIFIER_NAMES)


def top1_accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def compare_outputs(reference: dict[str, np.ndarray], actual: dict[str, np.ndarray],
                    labels: np.ndarray | None) -> dict:
    """Per-output numbers of ``actual`` against ``reference`` (stacked over all samples)."""
    per_output = {}
    for name, ref in reference.items():
        out = actual.get(name)
        if out is None:
            per_output[name] = {"shape_ok": False, "error": "output missing"}
            continue
        if out.shape != ref.shape:
            per_output[name] = {"shape_ok": False,
                                "error": f"shape {list(out.shape)}, expected {list(ref.shape)}"}
            continue
        m = compare(ref, out)
        if is_classifier_output(name, ref, labels):
            m["top1_agreement"] = float(np.mean(np.argmax(ref, 1) == np.argmax(out, 1)))
            if labels is not None and len(labels) == len(ref):
                m["top1_reference"] = top1_accuracy(ref, labels)
                m["top1"] = top1_accuracy(out, labels)
                m["top1_drop_points"] = (m["top1_reference"] - m["top1"]) * 100.0
        per_output[name] = m
    return per_output


def accuracy_gates(per_output: dict, budget: AccuracyBudget) -> list[Gate]:
    """The gates a cell must hold, from the precision's budget."""
    gates = []
    for name, m in per_output.items():
        if not m.get("shape_ok"):
            gates.append(Gate(f"{name}.shape_ok", 0.0, 1.0, "min"))
            continue
        gates.append(Gate(f"{name}.cosine", m["cosine"], budget.min_cosine, "min"))
        gates.append(Gate(f"{name}.rel_error", m["rel_error"], budget.max_rel_error, "max"))
        if "top1_agreement" in m:
            gates.append(Gate(f"{name}.top1_agreement", m["top1_agreement"],
                              budget.min_top1_agreement, "min"))
        if "top1_drop_points" in m:
            gates.append(Gate(f"{name}.top1_drop_points", m["top1_drop_points"],
                              budget.max_top1_drop, "max"))
    return gates
