"""Where int8 loses accuracy: rank the tensors whose quantization hurts most, and leave them in
float until the model is within its budget.

The ranking is measured, not guessed: ONNX Runtime's static QDQ quantization of the model
records a scale and zero point per activation tensor; running the fp32 model on calibration
samples gives each tensor's real values, and quantizing them with those parameters gives the
error that tensor's quantization adds, per channel (a layer with a few huge channels wrecks
the small ones under one per-tensor scale, which a whole-tensor error cannot see).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from edgepack.device import core

EPS = 1e-12


@dataclass(frozen=True)
class Sensitivity:
    """One quantized activation tensor and what quantizing it costs."""

    tensor: str
    node: str  # the node that produces it
    op: str
    error: float  # mean over channels of the relative RMS error its quantization adds
    low: float  # its value range on the samples
    high: float
    nodes: tuple[str, ...]  # its producer and consumers: excluded together to keep it float

    def to_dict(self) -> dict:
        return {"tensor": self.tensor, "node": self.node, "op": self.op, "error": self.error,
                "range": [self.low, self.high], "nodes": list(self.nodes)}


def quantized_tensors(qdq: onnx.ModelProto) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Activation tensor -> (scale, zero point) of every QuantizeLinear in a QDQ model."""
    inits = {i.name: numpy_helper.to_array(i) for i in qdq.graph.initializer}
    found = {}
    for node in qdq.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in inits \
                and node.input[1] in inits:
            zero = inits.get(node.input[2]) if len(node.input) > 2 and node.input[2] else \
                np.zeros((), np.uint8)
            found[node.input[0]] = (inits[node.input[1]], zero)
    return found


def rank(fp32: Path, qdq: Path, feeds: list[dict[str, np.ndarray]]) -> list[Sensitivity]:
    """The QDQ model's quantized activations, most damaging first."""
    import onnxruntime

    model = onnx.load(str(fp32))
    params = quantized_tensors(onnx.load(str(qdq)))
    producers = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list[str]] = {}
    for n in model.graph.node:
        for x in n.input:
            consumers.setdefault(x, []).append(n.name)
    inputs = {i.name for i in model.graph.input}
    names = [t for t in params if t in producers or t in inputs]
    outputs = {o.name for o in model.graph.output}
    for name in names:
        if name not in outputs:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    feed_names = {i.name for i in session.get_inputs()}
    values: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for feed in feeds:
        result = session.run(names, {k: v for k, v in feed.items() if k in feed_names})
        for n, v in zip(names, result, strict=True):
            values[n].append(v)
    order = {n.name: i for i, n in enumerate(model.graph.node)}
    ranked = []
    for name in names:
        x = np.stack(values[name]).astype(np.float64)
        scale, zero = params[name]
        node = producers.get(name)
        ranked.append(Sensitivity(
            name, node.name if node else "(input)", node.op_type if node else "Input",
            channel_error(x, scale, zero), float(x.min()), float(x.max()),
            tuple(n for n in ([node.name] if node else []) + consumers.get(name, []) if n)))
    # equal errors (a tensor and its reshape): the one produced first is where it starts
    return sorted(ranked, key=lambda s: (-round(s.error, 6), order.get(s.node, -1)))


def channel_error(x: np.ndarray, scale: np.ndarray, zero: np.ndarray) -> float:
    """Mean over channels of the relative RMS error of quantizing ``x`` (stacked samples of
    one tensor) with ``scale``/``zero`` (per tensor). Channels: axis 1 of a 4-D (NCHW) tensor,
    else its last axis (features, hidden units)."""
    info = np.iinfo(zero.dtype)
    s, z = float(np.asarray(scale).reshape(-1)[0]), float(np.asarray(zero).reshape(-1)[0])
    q = np.clip(np.round(x / s) + z, info.min, info.max)
    dq = (q - z) * s
    if x.ndim >= 3:
        channel = 2 if x.ndim == 5 else x.ndim - 1
        axes = tuple(i for i in range(x.ndim) if i != channel)
        err = np.sqrt(np.mean((dq - x) ** 2, axis=axes))
        ref = np.sqrt(np.mean(x ** 2, axis=axes))
        return float(np.mean(err / (ref + EPS)))
    return float(np.sqrt(np.mean((dq - x) ** 2)) / (np.sqrt(np.mean(x ** 2)) + EPS))


def within_budget(expected: dict[str, list], got: dict[str, list], tol: dict) -> tuple[bool, str]:
    """Whether every output holds ``tol`` (device.core's checks); and the worst numbers."""
    worst = []
    ok = True
    for name, ref in expected.items():
        kind = tol.get("kinds", {}).get(name, "values")  # a map, a sequence: as verified
        checks = core.output_checks(name, core.compare(ref, got[name], kind), tol)
        ok = ok and all(core.passes(v, lim, kind) for _, v, lim, kind in checks)
        worst += [f"{n} {v:.4g}" for n, v, _, _ in checks]
    return ok, ", ".join(worst)
