"""What the rewrites share: a model's constants, static shapes and fresh names, and node
surgery. Shapes are the inferred ones; every rewrite leaves a node alone unless it can prove
what the node computes (constant operands, static shapes)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

INT64_MAX = int(np.iinfo(np.int64).max)
INT64_MIN = int(np.iinfo(np.int64).min)


class Graph:
    """A copy of a model, with what rewrites look up: constants, shapes, fresh names."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = onnx.ModelProto.FromString(model.SerializeToString())
        self.graph = self.model.graph
        self.inits = {t.name: t for t in self.graph.initializer}
        self.consts = {n.output[0]: numpy_helper.to_array(n.attribute[0].t)
                       for n in self.graph.node if n.op_type == "Constant" and n.attribute
                       and n.attribute[0].name == "value"}
        self.names = {o for n in self.graph.node for o in n.output} | set(self.inits) | \
            {i.name for i in self.graph.input}
        self._shapes: dict[str, list] | None = None
        self._types: dict[str, int] = {}
        self._count = 0

    @property
    def opset(self) -> int:
        return next((o.version for o in self.model.opset_import
                     if o.domain in ("", "ai.onnx")), 0)

    @property
    def shapes(self) -> dict[str, list]:
        """Every tensor's inferred shape (a dimension None where it is not static)."""
        if self._shapes is None:
            try:
                inferred = onnx.shape_inference.infer_shapes(self.model)
            except Exception:  # noqa: BLE001 - no shapes: rewrites that need them do nothing
                inferred = self.model
            g = inferred.graph
            self._shapes = {}
            for vi in (*g.value_info, *g.input, *g.output):
                t = vi.type.tensor_type
                self._types[vi.name] = t.elem_type
                if t.HasField("shape"):
                    self._shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None
                                             for d in t.shape.dim]
            self._shapes.update({t.name: list(t.dims) for t in self.graph.initializer})
            self._types.update({t.name: t.data_type for t in self.graph.initializer})
        return self._shapes

    def elem_type(self, name: str) -> int | None:
        """A tensor's inferred element type (onnx.TensorProto.FLOAT, ...), None if unknown."""
        self.shapes  # noqa: B018 - infers shapes and types once
        return self._types.get(name) or None

    def static_shape(self, name: str) -> list[int] | None:
        shape = self.shapes.get(name)
        return shape if shape and all(isinstance(d, int) for d in shape) else None

    def const(self, name: str) -> np.ndarray | None:
        """The value of an initializer or a Constant node's output, else None."""
        if name in self.inits:
            return numpy_helper.to_array(self.inits[name])
        return self.consts.get(name)

    def fresh(self, base: str) -> str:
        while True:
            self._count += 1
            name = f"{base}__{self._count}"
            if name not in self.names:
                self.names.add(name)
                return name

    def add_init(self, base: str, array) -> str:
        name = self.fresh(base)
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(array), name))
        self.inits[name] = self.graph.initializer[-1]
        return name

    def ints(self, base: str, values) -> str:
        return self.add_init(base, np.array(list(values), np.int64))

    def slice(self, x: str, starts, ends, axes, steps=None, out: str | None = None
              ) -> onnx.NodeProto:
        """A Slice node of ``x`` with constant operands."""
        inputs = [x, self.ints("starts", starts), self.ints("ends", ends), self.ints("axes", axes)]
        if steps is not None:
            inputs.append(self.ints("steps", steps))
        return helper.make_node("Slice", inputs, [out or self.fresh(x + "/slice")])

    def replace(self, old: onnx.NodeProto, new: list[onnx.NodeProto]) -> None:
        """Put ``new`` where ``old`` was (the graph stays in topological order)."""
        nodes = list(self.graph.node)
        i = nodes.index(old)
        nodes[i:i + 1] = new
        del self.graph.node[:]
        self.graph.node.extend(nodes)


def attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            value = helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def set_attr(node: onnx.NodeProto, name: str, value) -> None:
    keep = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend([*keep, helper.make_attribute(name, value)])


def drop_attr(node: onnx.NodeProto, name: str) -> None:
    keep = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend(keep)


def subgraphs(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    return [g for a in node.attribute
            for g in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs))]


def all_inputs(nodes) -> set[str]:
    """What ``nodes`` read, their subgraphs (If/Loop/Scan bodies) included."""
    found: set[str] = set()
    for n in nodes:
        found.update(n.input)
        for g in subgraphs(n):
            found |= all_inputs(g.node)
    return found


def drop_unused(model: onnx.ModelProto) -> None:
    """Remove the nodes and initializers no graph output depends on (subgraphs walked)."""
    needed = {o.name for o in model.graph.output}
    keep = []
    for n in reversed(list(model.graph.node)):
        if any(o in needed for o in n.output):
            keep.append(n)
            needed |= {x for x in all_inputs([n]) if x}
    del model.graph.node[:]
    model.graph.node.extend(reversed(keep))
    inits = [t for t in model.graph.initializer if t.name in needed]
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits)
