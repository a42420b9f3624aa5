"""``Gather`` in the two forms converters lower: an embedding lookup, and slices.

* ``embedding-lookups``: a Gather of rows of a constant 2-D table (token embeddings) is
  what converters lower to an embedding layer (pnnx: ncnn's ``Embed``) when it is written
  plainly: no ``axis`` attribute (the default, 0, written out defeats the pattern), the ids
  straight from where they come from (a Cast of integer ids to int32/int64 in front becomes a
  layer of its own that ncnn lacks; Gather takes either), and at least 8 rows: pnnx runs the
  graph once on made-up integer inputs of value 7 and crashes when a smaller table (a 2-row
  token-type table) cannot be indexed by them. Zero rows are appended; real ids never
  reach them.
* ``gather-as-slices``: a Gather of a computed tensor at constant indices becomes a Slice
  (indices in arithmetic progression) or a Concat of one-element Slices (then a Reshape to
  the indices' shape where they have several axes): pnnx lowers a list of indices as if it
  were its first index alone.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgepack.stages.rewrites._graph import INT64_MIN, Graph, attr, drop_attr, drop_unused
from edgepack.stages.rewrites.base import NodeRewrite

MIN_ROWS = 8  # pnnx's made-up integer input is 7: a table needs rows 0..7
INTEGER_IDS = (onnx.TensorProto.INT32, onnx.TensorProto.INT64)


class EmbeddingLookups(NodeRewrite):
    name, op_type = "embedding-lookups", "Gather"

    def applies(self, model: onnx.ModelProto) -> bool:
        g = Graph(model)
        return any(_lookup_changes(g, n) for n in g.graph.node if n.op_type == "Gather")

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
        model, changes = super().apply(model)
        if changes:
            drop_unused(model)  # (a Cast whose ids are now read directly)
        return model, changes

    def rewrite(self, g: Graph, node: onnx.NodeProto) -> str | None:
        return ", ".join(_lookup_changes(g, node, apply=True)) or None


def _lookup_changes(g: Graph, node: onnx.NodeProto, apply: bool = False) -> list[str]:
    """What makes this Gather a plain embedding lookup (made so with ``apply``)."""
    if node.input[0] not in g.inits or attr(node, "axis", 0) != 0:
        return []
    table = numpy_helper.to_array(g.inits[node.input[0]])
    if table.ndim != 2:
        return []
    what = []
    if attr(node, "axis") is not None:
        what.append("default axis left implicit")
        if apply:
            drop_attr(node, "axis")
    cast = next((n for n in g.graph.node if node.input[1] in n.output), None)
    if cast is not None and cast.op_type == "Cast" and attr(cast, "to") in INTEGER_IDS \
            and _elem_type(g, cast.input[0]) in INTEGER_IDS:
        what.append("integer ids read without their Cast")
        if apply:
            node.input[1] = cast.input[0]
    if table.shape[0] < MIN_ROWS:
        what.append(f"{table.shape[0]}-row table padded to {MIN_ROWS} rows")
        if apply:
            padded = np.zeros((MIN_ROWS, table.shape[1]), table.dtype)
            padded[:table.shape[0]] = table
            node.input[0] = g.add_init(node.input[0] + "/rows", padded)
    return what


def _elem_type(g: Graph, name: str) -> int | None:
    for vi in (*g.graph.input, *g.graph.value_info, *g.graph.output):
        if vi.name == name:
            return vi.type.tensor_type.elem_type
    producer = next((n for n in g.graph.node if name in n.output), None)
    if producer is not None and producer.op_type == "Cast":
        return attr(producer, "to")
    return None


class GathersAsSlices(NodeRewrite):
    name, op_type = "gather-as-slices", "Gather"

    def applies(self, model: onnx.ModelProto) -> bool:
        g = Graph(model)
        return any(_indices(g, n) is not None for n in g.graph.node if n.op_type == "Gather")

    def rewrite(self, g: Graph, node: onnx.NodeProto) -> str | None:
        idx = _indices(g, node)
        dims = g.static_shape(node.input[0]) if idx is not None else None
        if dims is None:
            return None
        axis = attr(node, "axis", 0) % len(dims)
        nodes = _slices(g, node, [int(i) % dims[axis] for i in idx.ravel()], axis)
        if idx.ndim != 1:  # the gathered axis becomes the indices' shape
            shape = [*dims[:axis], *idx.shape, *dims[axis + 1:]]
            nodes[-1].output[0] = g.fresh(node.output[0] + "/flat")
            nodes.append(helper.make_node("Reshape", [nodes[-1].output[0],
                                                      g.ints("shape", shape)],
                                          [node.output[0]]))
        g.replace(node, nodes)
        return f"{idx.size} constant indices as slices"


def _indices(g: Graph, node: onnx.NodeProto) -> np.ndarray | None:
    """The constant 1-D indices of a Gather of a computed tensor, else None."""
    if node.input[0] in g.inits or g.const(node.input[0]) is not None:
        return None
    idx = g.const(node.input[1])
    return idx if idx is not None and idx.ndim >= 1 and idx.size else None


def _slices(g: Graph, node: onnx.NodeProto, idx: list[int], axis: int) -> list[onnx.NodeProto]:
    steps = {b - a for a, b in zip(idx, idx[1:], strict=False)}
    if len(idx) == 1 or (len(steps) == 1 and 0 not in steps):
        step = steps.pop() if steps else 1
        end = idx[-1] + (1 if step > 0 else -1)
        return [g.slice(node.input[0], [idx[0]], [end if end >= 0 else INT64_MIN], [axis],
                        [step], out=node.output[0])]
    nodes = [g.slice(node.input[0], [i], [i + 1], [axis]) for i in idx]
    return [*nodes, helper.make_node("Concat", [n.output[0] for n in nodes], [node.output[0]],
                                     axis=axis)]
