"""``Pad`` in its plainest form: the mode written out, pads over every axis, one sign.

Converters match ``Pad`` by pattern (pnnx's lowering to ncnn's ``Padding`` among them) and
pass other spellings of the same operation through unconverted or, worse, converted wrong:

* no ``mode`` attribute (the ONNX default, constant, left implicit as tf2onnx writes it):
  written out;
* the ``axes`` input (opset 18): pads expanded to every axis;
* pads that grow one side and cut another: a Pad of the growing part, then a Slice;
* ``wrap`` mode (opset 19): per axis, a Concat of the wrapped slices and the tensor.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from edgepack.stages.rewrites._graph import INT64_MAX, Graph, attr, set_attr
from edgepack.stages.rewrites.base import NodeRewrite


class ExplicitPads(NodeRewrite):
    name, op_type = "explicit-pads", "Pad"

    def applies(self, model: onnx.ModelProto) -> bool:
        g = Graph(model)
        return any(_needs(g, n) for n in g.graph.node if n.op_type == "Pad")

    def rewrite(self, g: Graph, node: onnx.NodeProto) -> str | None:
        return _rewrite(g, node)


def _needs(g: Graph, node: onnx.NodeProto) -> bool:
    """A Pad this rewrite changes: no mode, wrap mode, an axes input or pads of both signs
    (no shape inference)."""
    if attr(node, "mode") in (None, "wrap") or len(node.input) > 3 and bool(node.input[3]):
        return True
    pads = attr(node, "pads") if g.opset < 11 else \
        g.const(node.input[1]) if len(node.input) > 1 else None
    return pads is not None and any(p < 0 for p in pads) and any(p > 0 for p in pads)


def _pads(g: Graph, node: onnx.NodeProto) -> tuple[list[int], float | None] | None:
    """The node's pads over every axis and its constant value, or None when not constant."""
    if g.opset < 11:
        return list(attr(node, "pads")), attr(node, "value", 0.0)
    pads = g.const(node.input[1]) if len(node.input) > 1 else None
    if pads is None:
        return None
    pads, value = [int(p) for p in pads], None
    if len(node.input) > 2 and node.input[2]:
        v = g.const(node.input[2])
        if v is None:
            return None
        value = float(np.asarray(v).reshape(-1)[0])
    if len(node.input) > 3 and node.input[3]:
        axes, shape = g.const(node.input[3]), g.shapes.get(node.input[0])
        if axes is None or not shape:
            return None
        rank, k = len(shape), len(axes)
        full = [0] * (2 * rank)
        for j, a in enumerate(int(a) % rank for a in axes):
            full[a], full[rank + a] = pads[j], pads[k + j]
        pads = full
    return pads, value


def _rewrite(g: Graph, node: onnx.NodeProto) -> str | None:
    """Rewrite one Pad in place; what was done, or None."""
    mode = attr(node, "mode")
    found = _pads(g, node)
    if found is None:
        if mode is None:
            set_attr(node, "mode", "constant")
            return "mode 'constant' written out"
        return None
    pads, value = found
    rank = len(pads) // 2
    had_axes = g.opset >= 11 and len(node.input) > 3 and bool(node.input[3])
    mixed = any(p < 0 for p in pads) and any(p > 0 for p in pads)
    mode = mode or "constant"
    if mode == "wrap":
        if any(p < 0 for p in pads):
            return None
        g.replace(node, _wrapped(g, node, pads))
        return "wrap padding as a Concat of slices"
    if mixed:
        mid = g.fresh(node.output[0] + "/grown")
        cut = [(a, -pads[a] if pads[a] < 0 else 0, pads[rank + a] if pads[rank + a] < 0
                else INT64_MAX) for a in range(rank) if pads[a] < 0 or pads[rank + a] < 0]
        g.replace(node, [_pad(g, node.input[0], mid, [max(p, 0) for p in pads], mode, value),
                         g.slice(mid, [c[1] for c in cut], [c[2] for c in cut],
                                 [c[0] for c in cut], out=node.output[0])])
        return "pads of both signs as a Pad then a Slice"
    if not had_axes and attr(node, "mode") is not None:
        return None
    g.replace(node, [_pad(g, node.input[0], node.output[0], pads, mode, value)])
    return "pads over every axis" if had_axes else "mode 'constant' written out"


def _pad(g: Graph, x: str, out: str, pads: list[int], mode: str, value: float | None
         ) -> onnx.NodeProto:
    if g.opset < 11:
        extra = {"value": float(value)} if value else {}
        return helper.make_node("Pad", [x], [out], mode=mode, pads=pads, **extra)
    inputs = [x, g.ints("pads", pads)]
    if value is not None:
        inputs.append(g.add_init("pad_value", np.array(value, np.float32)))
    return helper.make_node("Pad", inputs, [out], mode=mode)


def _wrapped(g: Graph, node: onnx.NodeProto, pads: list[int]) -> list[onnx.NodeProto]:
    """x padded by wrapping, axis by axis: Concat(x[-begin:], x, x[:end])."""
    rank = len(pads) // 2
    nodes, cur = [], node.input[0]
    for a in range(rank):
        begin, end = pads[a], pads[rank + a]
        if not begin and not end:
            continue
        parts = []
        if begin:
            nodes.append(g.slice(cur, [-begin], [INT64_MAX], [a]))
            parts.append(nodes[-1].output[0])
        parts.append(cur)
        if end:
            nodes.append(g.slice(cur, [0], [end], [a]))
            parts.append(nodes[-1].output[0])
        cur = g.fresh(node.output[0] + "/wrapped")
        nodes.append(helper.make_node("Concat", parts, [cur], axis=a))
    if not nodes:
        return [helper.make_node("Identity", [node.input[0]], [node.output[0]])]
    nodes[-1].output[0] = node.output[0]
    return nodes
