"""``sums-as-means``: a ``ReduceSum`` whose axes are a constant input (every opset from 13)
becomes a ``ReduceMean`` over the same axes, as an attribute (ReduceMean has it until opset
17), times the number of values it reduces. Converters that read reduction axes only as an
attribute (pnnx) otherwise drop them, and the sum reduces nothing."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from edgepack.stages.rewrites._graph import Graph, attr
from edgepack.stages.rewrites.base import NodeRewrite


class SumsAsMeans(NodeRewrite):
    name, op_type = "sums-as-means", "ReduceSum"

    def applies(self, model: onnx.ModelProto) -> bool:
        g = Graph(model)
        return g.opset <= 17 and any(_axes(g, n) is not None for n in g.graph.node
                                     if n.op_type == "ReduceSum")

    def rewrite(self, g: Graph, node: onnx.NodeProto) -> str | None:
        axes = _axes(g, node) if g.opset <= 17 else None  # (ReduceMean's axes: input at 18)
        dims = g.static_shape(node.input[0]) if axes is not None else None
        if dims is None:
            return None
        axes = [a % len(dims) for a in axes] or list(range(len(dims)))
        count = int(np.prod([dims[a] for a in axes]))
        mean = g.fresh(node.output[0] + "/mean")
        g.replace(node, [
            helper.make_node("ReduceMean", [node.input[0]], [mean], axes=axes,
                             keepdims=attr(node, "keepdims", 1)),
            helper.make_node("Mul", [mean, g.add_init("count", np.array(count, np.float32))],
                             [node.output[0]])])
        return f"the mean over axes {axes} times {count}"


def _axes(g: Graph, node: onnx.NodeProto) -> list[int] | None:
    """The constant axes input of a float ReduceSum (``[]``: every axis), else None."""
    if len(node.input) < 2 or not node.input[1] or attr(node, "noop_with_empty_axes", 0):
        return None
    axes = g.const(node.input[1])
    if axes is None or g.elem_type(node.input[0]) not in (onnx.TensorProto.FLOAT,
                                                          onnx.TensorProto.FLOAT16):
        return None
    return [int(a) for a in axes.ravel()]
