"""``opset-17``: a model of a newer default-domain opset written in opset 17, for converters
that read the older spellings only (pnnx reads ``Reduce*`` axes as the attribute, and
silently reduces nothing when opset 18 gives them as an input).

ONNX's version converter has no adapter for ``Pad`` from 18 to 17 (it refuses any model
holding one), so the ops whose signature changed after 17 are rewritten here, each only
where its operands are constant: ``Reduce*`` axes input to the attribute, ``Split``'s
``num_outputs`` to explicit sizes, ``Pad``'s empty ``axes`` dropped (the ``explicit-pads``
rewrite expands a real one first), attributes added later at their default values dropped.
A model holding an op or an attribute value that opset 17 cannot express is left as it is.
"""

from __future__ import annotations

import onnx
from onnx import defs

from edgepack.stages.rewrites._graph import Graph, attr, drop_attr, set_attr
from edgepack.stages.rewrites.base import Rewrite

TARGET = 17
REDUCE_WITH_AXES_INPUT = ("ReduceMax", "ReduceMin", "ReduceMean", "ReduceProd", "ReduceL1",
                          "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")
# attributes added after opset 17, and the value that means what opset 17 did (None: any
# value of it is something opset 17 cannot say)
LATER_DEFAULTS = {("Cast", "saturate"): 1, ("CastLike", "saturate"): 1,
                  ("Resize", "antialias"): 0, ("Resize", "keep_aspect_ratio_policy"): "stretch",
                  ("Resize", "axes"): None, ("AveragePool", "dilations"): None,
                  ("ScatterElements", "reduction"): "none", ("ScatterND", "reduction"): "none"}


class Opset17(Rewrite):
    name = "opset-17"

    def applies(self, model: onnx.ModelProto) -> bool:
        return Graph(model).opset > TARGET

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
        g = Graph(model)
        before = g.opset
        if before <= TARGET or any(_new_op(n) for n in g.graph.node):
            return model, []
        for node in g.graph.node:
            if not _down(g, node):
                return model, []  # something opset 17 cannot say: the model as it was
        for o in g.model.opset_import:
            if o.domain in ("", "ai.onnx"):
                o.version = TARGET
        try:  # every node as opset 17's schema has it (attributes, inputs, types)
            onnx.checker.check_model(g.model)
        except onnx.checker.ValidationError:
            return model, []
        return g.model, [f"written in opset {TARGET} (was {before})"]


def _new_op(node: onnx.NodeProto) -> bool:
    """An op of the default domain that opset 17 does not have."""
    if node.domain not in ("", "ai.onnx"):
        return False
    try:
        defs.get_schema(node.op_type, TARGET, "")
    except Exception:  # noqa: BLE001 - no schema at or below 17
        return True
    return False


def _down(g: Graph, node: onnx.NodeProto) -> bool:
    """Rewrite one node in its opset-17 form; False when it cannot be."""
    for (op, name), default in LATER_DEFAULTS.items():
        if node.op_type == op and attr(node, name) is not None:
            if default is None or attr(node, name) != default:
                return False  # (None: any value of it is new)
            drop_attr(node, name)
    if node.op_type in REDUCE_WITH_AXES_INPUT and len(node.input) > 1:
        axes = g.const(node.input[1]) if node.input[1] else None
        if node.input[1] and axes is None or attr(node, "noop_with_empty_axes", 0):
            return False
        del node.input[1:]
        if axes is not None and axes.size:
            set_attr(node, "axes", [int(a) for a in axes])
    elif node.op_type == "Split" and attr(node, "num_outputs") is not None:
        return _split_sizes(g, node)
    elif node.op_type == "Pad" and len(node.input) > 3:
        if node.input[3]:
            return False
        del node.input[3:]
    return True


def _split_sizes(g: Graph, node: onnx.NodeProto) -> bool:
    """``num_outputs`` as explicit sizes (the last chunk smaller, as opset 18 splits)."""
    dims = g.static_shape(node.input[0])
    if dims is None:
        return False
    n, length = attr(node, "num_outputs"), dims[attr(node, "axis", 0) % len(dims)]
    chunk = -(-length // n)
    sizes = [min(chunk, length - i * chunk) for i in range(n)]
    drop_attr(node, "num_outputs")
    while len(node.input) < 2:
        node.input.append("")
    node.input[1] = g.ints("split", sizes)
    return True
