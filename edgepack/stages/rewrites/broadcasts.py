"""``constant-broadcasts``: where an elementwise op broadcasts both of its operands (a [64, 1]
constant times a [1, 64] tensor makes a [64, 64] one), the constant is stored at the
result's full shape. Runtimes that broadcast one operand against the other (ncnn's BinaryOp)
then compute it; broadcasting both at once, they read out of bounds (ncnn crashes)."""

from __future__ import annotations

import numpy as np
import onnx

from edgepack.stages.rewrites._graph import Graph
from edgepack.stages.rewrites.base import Rewrite

ELEMENTWISE = ("Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "PRelu", "Mod")
MAX_ELEMENTS = 1 << 24  # a constant grown past this is not stored (16 Mi values)


class ConstantBroadcasts(Rewrite):
    name = "constant-broadcasts"

    def applies(self, model: onnx.ModelProto) -> bool:
        g = Graph(model)
        return any(_plan(g, n) for n in g.graph.node if n.op_type in ELEMENTWISE)

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
        g = Graph(model)
        changes = []
        for node in [n for n in g.graph.node if n.op_type in ELEMENTWISE]:
            plan = _plan(g, node)
            if plan is None:
                continue
            i, full = plan
            node.input[i] = g.add_init(node.input[i] + "/broadcast", full)
            changes.append(f"{node.op_type} '{node.name or node.output[0]}': constant operand "
                           f"stored at the result's shape {list(full.shape)}")
        return g.model, changes


def _plan(g: Graph, node: onnx.NodeProto) -> tuple[int, np.ndarray] | None:
    """(which operand, its value at the result's shape) for an op that broadcasts both."""
    if len(node.input) != 2:
        return None
    shapes = [g.static_shape(x) for x in node.input]
    if any(s is None for s in shapes):
        return None
    try:
        out = list(np.broadcast_shapes(*(tuple(s) for s in shapes)))
    except ValueError:
        return None
    rank = len(out)
    padded = [[1] * (rank - len(s)) + list(s) for s in shapes]
    if any(p == out for p in padded) or int(np.prod(out)) > MAX_ELEMENTS:
        return None
    for i, x in enumerate(node.input):
        value = g.const(x)
        if value is not None:
            return i, np.ascontiguousarray(np.broadcast_to(value, out))
    return None
