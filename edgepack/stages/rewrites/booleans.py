"""Boolean tensors as 0/1 floats, for runtimes that have no boolean type or logic ops (ncnn).

Masks are built with booleans: an attention mask cast to bool, combined with ``And``,
compared, and turned into an additive bias by ``Where``. Every such tensor becomes a float
holding 0 or 1, and each op the same computation in arithmetic:

* ``Cast(x -> bool)`` (x != 0): ``Ceil(Min(Abs(x), 1))``, exact for every finite x;
* ``And``: ``Mul``; ``Or``: ``Max``; ``Xor``: ``Abs(Sub)``; ``Not``: ``1 - x``;
* ``Greater(a, b)``: ``Ceil(Clip(a - b, 0, 1))``; ``Less``, ``GreaterOrEqual``,
  ``LessOrEqual`` from it; ``Equal(a, b)``: ``1 - Ceil(Min(Abs(a - b), 1))`` (integer
  operands are compared as float32: exact below 2**24);
* ``Where(c, x, y)`` of float x and y: ``y + c * (x - y)`` (finite constants only);
* ``Cast(bool -> float)``: nothing; ops that only move or reshape data (Reshape, Expand,
  Gather, Slice, Concat, ...) carry the 0/1 floats as they carried the booleans.

A model whose booleans reach anything else (a graph input or output, a Where choosing
integers, an op not listed) is left as it is.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgepack.stages.rewrites._graph import Graph, attr
from edgepack.stages.rewrites.base import Rewrite

LOGIC = ("And", "Or", "Xor", "Not")
COMPARE = ("Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual")
# ops that move booleans without computing on them: (op, the inputs that carry data)
CARRY = {"Reshape": (0,), "Flatten": (0,), "Squeeze": (0,), "Unsqueeze": (0,),
         "Expand": (0,), "Transpose": (0,), "Gather": (0,), "Slice": (0,), "Identity": (0,),
         "Tile": (0,), "Concat": None, "GatherElements": (0,)}
FLOATS = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE)


class BooleansAsFloats(Rewrite):
    name = "booleans-as-floats"

    def applies(self, model: onnx.ModelProto) -> bool:
        bools = _booleans(Graph(model))
        return bool(bools) and _convertible(Graph(model), bools)

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
        g = Graph(model)
        bools = _booleans(g)
        if not bools or not _convertible(g, bools):
            return model, []
        count = 0
        for node in list(g.graph.node):
            new = _convert(g, node, bools)
            if new is not None:
                g.replace(node, new)
                count += 1
        _retype_constants(g, bools)
        kept = [v for v in g.graph.value_info if v.name not in bools]
        del g.graph.value_info[:]
        g.graph.value_info.extend(kept)
        return g.model, [f"{len(bools)} boolean tensor(s) as 0/1 floats, {count} node(s) as "
                         "arithmetic"]


def _bool_constant(g: Graph, name: str) -> bool:
    value = g.const(name)
    return value is not None and value.dtype == np.bool_


def _booleans(g: Graph) -> set[str]:
    """The names of the boolean tensors (propagated through the ops that carry data)."""
    found = {t.name for t in g.graph.initializer if t.data_type == TensorProto.BOOL}
    found |= {name for name in g.consts if _bool_constant(g, name)}
    changed = True
    while changed:
        changed = False
        for n in g.graph.node:
            if not n.output or n.output[0] in found:
                continue
            if n.op_type in LOGIC or n.op_type in COMPARE or (
                    n.op_type == "Cast" and attr(n, "to") == TensorProto.BOOL) or (
                    n.op_type == "ConstantOfShape" and _cos_bool(n)) or (
                    n.op_type in CARRY and _carried(n) and _carried(n)[0] in found):
                found.update(o for o in n.output if o)
                changed = True
    return found


def _cos_bool(node: onnx.NodeProto) -> bool:
    value = attr(node, "value")
    return value is not None and value.data_type == TensorProto.BOOL


def _carried(node: onnx.NodeProto) -> list[str]:
    positions = CARRY[node.op_type]
    return list(node.input) if positions is None else [node.input[i] for i in positions]


def _convertible(g: Graph, bools: set[str]) -> bool:
    """Every use of a boolean is one this rewrite turns into arithmetic."""
    inputs = {i.name for i in g.graph.input}
    if bools & inputs or bools & {o.name for o in g.graph.output}:
        return False
    for n in g.graph.node:
        used = [x for x in n.input if x in bools]
        if not used or n.op_type in LOGIC or n.op_type == "Cast":
            continue
        if n.op_type in CARRY and (CARRY[n.op_type] is None or set(used) <=
                                    set(_carried(n))) and n.output[0] in bools:
            continue
        if n.op_type == "Where" and used == [n.input[0]] and \
                all(_float(g, x) for x in n.input[1:]):
            continue
        if n.op_type in COMPARE:
            continue
        return False
    return True


def _float(g: Graph, name: str) -> bool:
    """A float tensor (and, when constant, a finite one)."""
    value = g.const(name)
    if value is not None:
        return value.dtype.kind == "f" and bool(np.isfinite(value).all())
    return g.elem_type(name) in FLOATS


def _node(g: Graph, op: str, inputs: list[str], out: str | None = None, **attrs
          ) -> onnx.NodeProto:
    return helper.make_node(op, inputs, [out or g.fresh(op.lower())], **attrs)


def _as_float(g: Graph, nodes: list, x: str, bools: set[str]) -> str:
    """``x`` as float32 (a Cast unless it is a float or one of the converted booleans)."""
    if x in bools or _float(g, x):
        return x
    nodes.append(_node(g, "Cast", [x], to=TensorProto.FLOAT))
    return nodes[-1].output[0]


def _one(g: Graph) -> str:
    return g.add_init("one", np.array(1.0, np.float32))


def _nonzero(g: Graph, nodes: list, x: str, out: str) -> None:
    """x != 0 as 0/1: Ceil(Min(Abs(x), 1))."""
    nodes.append(_node(g, "Abs", [x]))
    nodes.append(_node(g, "Min", [nodes[-1].output[0], _one(g)]))
    nodes.append(_node(g, "Ceil", [nodes[-1].output[0]], out))


def _convert(g: Graph, n: onnx.NodeProto, bools: set[str]) -> list[onnx.NodeProto] | None:
    """The node in arithmetic (None: unchanged)."""
    op, out, nodes = n.op_type, (n.output[0] if n.output else ""), []
    if op == "Cast" and attr(n, "to") == TensorProto.BOOL:
        _nonzero(g, nodes, _as_float(g, nodes, n.input[0], bools), out)
    elif op == "Cast" and n.input[0] in bools:
        to = attr(n, "to")
        nodes.append(_node(g, "Identity" if to == TensorProto.FLOAT else "Cast", [n.input[0]],
                           out, **({} if to == TensorProto.FLOAT else {"to": to})))
    elif op in ("And", "Or"):
        nodes.append(_node(g, "Mul" if op == "And" else "Max", list(n.input), out))
    elif op == "Xor":
        nodes.append(_node(g, "Sub", list(n.input)))
        nodes.append(_node(g, "Abs", [nodes[-1].output[0]], out))
    elif op == "Not":
        nodes.append(_node(g, "Sub", [_one(g), n.input[0]], out))
    elif op in COMPARE:
        a, b = (_as_float(g, nodes, x, bools) for x in n.input)
        _compare(g, nodes, op, a, b, out)
    elif op == "Where" and n.input[0] in bools:
        c, x, y = n.input
        nodes.append(_node(g, "Sub", [x, y]))
        nodes.append(_node(g, "Mul", [c, nodes[-1].output[0]]))
        nodes.append(_node(g, "Add", [y, nodes[-1].output[0]], out))
    elif op == "ConstantOfShape" and _cos_bool(n):
        value = numpy_helper.to_array(attr(n, "value")).astype(np.float32)
        nodes.append(helper.make_node("ConstantOfShape", list(n.input), [out],
                                      value=numpy_helper.from_array(value)))
    else:
        return None
    return nodes


def _compare(g: Graph, nodes: list, op: str, a: str, b: str, out: str) -> None:
    if op == "Equal":
        nodes.append(_node(g, "Sub", [a, b]))
        _nonzero(g, nodes, nodes[-1].output[0], g.fresh("different"))
        nodes.append(_node(g, "Sub", [_one(g), nodes[-1].output[0]], out))
        return
    first, second = (b, a) if op in ("Less", "GreaterOrEqual") else (a, b)
    flip = op in ("GreaterOrEqual", "LessOrEqual")  # not (second > first)
    nodes.append(_node(g, "Sub", [first, second]))
    nodes.append(_node(g, "Clip", [nodes[-1].output[0],
                                   g.add_init("zero", np.array(0.0, np.float32)), _one(g)]))
    greater = g.fresh("greater") if flip else out
    nodes.append(_node(g, "Ceil", [nodes[-1].output[0]], greater))
    if flip:
        nodes.append(_node(g, "Sub", [_one(g), greater], out))


def _retype_constants(g: Graph, bools: set[str]) -> None:
    """Boolean initializers and Constant nodes as float32 0/1."""
    for i, t in enumerate(g.graph.initializer):
        if t.data_type == TensorProto.BOOL:
            g.graph.initializer[i].CopyFrom(numpy_helper.from_array(
                numpy_helper.to_array(t).astype(np.float32), t.name))
    for n in g.graph.node:
        if n.op_type == "Constant" and n.output[0] in bools:
            value = numpy_helper.to_array(n.attribute[0].t).astype(np.float32)
            del n.attribute[:]
            n.attribute.extend([helper.make_attribute("value",
                                                      numpy_helper.from_array(value))])


RETYPED = "edgepack.retyped_inputs"  # metadata: input name -> the dtype callers feed
THROUGH = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Expand", "Transpose", "Identity")


class FloatInputs(Rewrite):
    """``float-inputs``: an integer input that the model only ever casts to float (through
    ops that only move data) is declared a float input, and its Casts dropped. Runtimes that
    run integers as another type (ncnn takes int32 only for lookups) then take its values as
    floats: the model's metadata (``edgepack.retyped_inputs``) records the type callers
    still feed, and the runtime converts them (exact below 2**24)."""

    name = "float-inputs"

    def applies(self, model: onnx.ModelProto) -> bool:
        return bool(_float_only_inputs(Graph(model)))

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
        g = Graph(model)
        found = _float_only_inputs(g)
        if not found:
            return model, []
        retyped = {}
        for inp in g.graph.input:
            if inp.name in found:
                retyped[inp.name] = onnx.helper.tensor_dtype_to_np_dtype(
                    inp.type.tensor_type.elem_type).name
                inp.type.tensor_type.elem_type = TensorProto.FLOAT
        for cast in found.values():
            for n in cast:
                to = attr(n, "to")
                g.replace(n, [_node(g, "Identity" if to == TensorProto.FLOAT else "Cast",
                                    [n.input[0]], n.output[0],
                                    **({} if to == TensorProto.FLOAT else {"to": to}))])
        moved = {x for n in g.graph.node if n.op_type in THROUGH for x in n.output}
        kept = [v for v in g.graph.value_info if v.name not in moved]
        del g.graph.value_info[:]
        g.graph.value_info.extend(kept)
        old = {p.key: p.value for p in g.model.metadata_props}.get(RETYPED)
        record = {**(json.loads(old) if old else {}), **retyped}
        onnx.helper.set_model_props(g.model, {**{p.key: p.value for p in
                                                 g.model.metadata_props},
                                              RETYPED: json.dumps(record, sort_keys=True)})
        return g.model, [f"input '{name}' ({dtype}) taken as float: the model only casts it "
                         "to float" for name, dtype in retyped.items()]


def _float_only_inputs(g: Graph) -> dict[str, list[onnx.NodeProto]]:
    """Integer inputs whose every use, through ops that only move data, is a Cast to a float
    type: input name -> those Casts."""
    users: dict[str, list[onnx.NodeProto]] = {}
    for n in g.graph.node:
        for x in n.input:
            users.setdefault(x, []).append(n)
    found = {}
    for inp in g.graph.input:
        if inp.type.tensor_type.elem_type not in (TensorProto.INT64, TensorProto.INT32,
                                                  TensorProto.INT16, TensorProto.INT8,
                                                  TensorProto.UINT8):
            continue
        casts, todo, ok = [], [inp.name], True
        while todo and ok:
            current = todo.pop()
            for n in users.get(current, []):
                if n.op_type == "Cast" and attr(n, "to") in FLOATS:
                    casts.append(n)
                elif n.op_type in THROUGH and n.input[0] == current:
                    todo.append(n.output[0])
                else:
                    ok = False
        if ok and casts:
            found[inp.name] = casts
    return found
