"""Unroll LSTM/GRU/RNN nodes into their equations (a strategy's rewrite): MatMul, Add,
Sigmoid, Tanh and Mul per time step, which every converter handles, where some convert
recurrent ops wrongly or not at all. Only nodes with a static sequence length, constant
weights and the default activations are unrolled."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgepack.stages.graph import GATES, _copy, _shapes, prune_initializers
from edgepack.stages.rewrites.base import Rewrite


class UnrollRnn(Rewrite):
    name = "unroll-rnn"

    def applies(self, model: onnx.ModelProto) -> bool:
        return any(n.op_type in GATES for n in model.graph.node)

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
        return unroll_rnn(model)


class _Builder:
    """Appends nodes and initializers with unique names under a prefix."""

    def __init__(self, graph: onnx.GraphProto, prefix: str) -> None:
        self.graph, self.prefix, self.count, self.nodes = graph, prefix, 0, []

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{self.prefix}{hint}_{self.count}"

    def const(self, hint: str, value: np.ndarray) -> str:
        name = self.name(hint)
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], out: str | None = None, **attrs) -> str:
        out = out or self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=self.name(op_type),
                                           **attrs))
        return out


def _rnn_unrollable(node: onnx.NodeProto, inits: dict, shapes: dict) -> str | None:
    """Why a recurrent node cannot be unrolled here, or None."""
    attrs = {a.name: a for a in node.attribute}
    if any(k in attrs for k in ("activations", "activation_alpha", "activation_beta", "clip")):
        return "custom activations or clip"
    if attrs.get("layout") and attrs["layout"].i != 0:
        return "layout 1"
    if node.op_type == "LSTM" and attrs.get("input_forget") and attrs["input_forget"].i:
        return "input_forget"
    inputs = list(node.input) + [""] * 8
    if inputs[4] or (node.op_type == "LSTM" and inputs[7]):
        return "sequence_lens or peepholes"
    if not all(inputs[i] in inits for i in (1, 2)) or (inputs[3] and inputs[3] not in inits):
        return "weights not constant"
    x = shapes.get(inputs[0])
    if not x or len(x) != 3 or not all(x):
        return "sequence length not static"
    return None


def unroll_rnn(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """Rewrite LSTM/GRU/RNN nodes (static sequence length, default activations) as their
    unrolled equations: MatMul, Add, Sigmoid, Tanh, Mul per time step, which every converter
    handles (some convert recurrent ops wrongly, or not at all)."""
    model = _copy(model)
    shapes = _shapes(model)
    inits = {i.name: i for i in model.graph.initializer}
    changed = []
    for node in list(model.graph.node):
        if node.op_type not in GATES or _rnn_unrollable(node, inits, shapes) is not None:
            continue
        builder = _Builder(model.graph, f"{node.name or node.output[-1]}/unrolled/")
        _unroll(builder, node, inits, shapes)
        nodes = list(model.graph.node)
        index = nodes.index(node)
        nodes[index:index + 1] = builder.nodes
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        steps = shapes[node.input[0]][0]
        changed.append(f"{node.op_type} '{node.name or node.output[-1]}' unrolled over "
                       f"{steps} steps")
    if changed:
        prune_initializers(model.graph)
    return model, changed


def _unroll(b: _Builder, node: onnx.NodeProto, inits: dict, shapes: dict) -> None:
    attrs = {a.name: a for a in node.attribute}
    kind, hidden = node.op_type, attrs["hidden_size"].i
    gates = GATES[kind]
    direction = attrs["direction"].s.decode() if "direction" in attrs else "forward"
    inputs = list(node.input) + [""] * 8
    steps, batch, _ = shapes[inputs[0]]
    w = numpy_helper.to_array(inits[inputs[1]]).astype(np.float32)
    r = numpy_helper.to_array(inits[inputs[2]]).astype(np.float32)
    dirs = w.shape[0]
    bias = (numpy_helper.to_array(inits[inputs[3]]).astype(np.float32) if inputs[3]
            else np.zeros((dirs, 2 * gates * hidden), np.float32))
    zero = np.zeros((batch, hidden), np.float32)
    results = []
    for d in range(dirs):
        reverse = direction == "reverse" or (direction == "bidirectional" and d == 1)
        h = b.op("Gather", [inputs[5], b.const("dir", np.array(d, np.int64))]) if inputs[5] \
            else b.const("h0", zero)
        c = None
        if kind == "LSTM":
            c = b.op("Gather", [inputs[6], b.const("dir", np.array(d, np.int64))]) \
                if inputs[6] else b.const("c0", zero)
        wb, rb = bias[d, :gates * hidden], bias[d, gates * hidden:]
        # the input projection of every step at once: [T, B, gates*H]
        xw = b.op("MatMul", [inputs[0], b.const("W_t", w[d].T.copy())])
        if kind == "GRU" and "linear_before_reset" in attrs and attrs["linear_before_reset"].i:
            xw = b.op("Add", [xw, b.const("Wb", wb)])
            rb_h = rb[2 * hidden:]
            rb_zr = np.concatenate([rb[:2 * hidden], np.zeros(hidden, np.float32)])
            xw = b.op("Add", [xw, b.const("Rb_zr", rb_zr)])
        else:
            rb_h = None
            xw = b.op("Add", [xw, b.const("b", wb + rb)])
        r_t = b.const("R_t", r[d].T.copy()) if kind != "GRU" else None
        order = range(steps - 1, -1, -1) if reverse else range(steps)
        ys = {}
        for t in order:
            x_t = b.op("Gather", [xw, b.const("t", np.array(t, np.int64))])
            h, c = _cell(b, kind, hidden, x_t, h, c, r_t, r[d], rb_h, attrs)
            ys[t] = b.op("Unsqueeze", [h, b.const("axes", np.array([0], np.int64))])
        y = b.op("Concat", [ys[t] for t in range(steps)], axis=0)  # [T, B, H]
        results.append((y, h, c))
    axes1 = b.const("axes", np.array([1], np.int64))
    axes0 = b.const("axes", np.array([0], np.int64))
    outs = list(node.output) + ["", "", ""]
    if outs[0]:
        ys = [b.op("Unsqueeze", [y, axes1]) for y, _, _ in results]
        b.op("Concat", ys, outs[0], axis=1) if len(ys) > 1 else b.op("Identity", ys, outs[0])
    for index, part in ((1, 1), (2, 2)):
        if outs[index] and (part == 1 or kind == "LSTM"):
            states = [b.op("Unsqueeze", [res[part], axes0]) for res in results]
            b.op("Concat", states, outs[index], axis=0) if len(states) > 1 else \
                b.op("Identity", states, outs[index])


def _cell(b: _Builder, kind: str, hidden: int, x_t: str, h: str, c: str | None, r_t: str,
          r: np.ndarray, rb_h: np.ndarray | None, attrs: dict) -> tuple[str, str | None]:
    """One time step; ``x_t`` already holds the input projection plus biases."""
    if kind == "RNN":
        return b.op("Tanh", [b.op("Add", [x_t, b.op("MatMul", [h, r_t])])]), None
    if kind == "LSTM":
        gates = b.op("Add", [x_t, b.op("MatMul", [h, r_t])])
        split = b.const("split", np.array([hidden] * 4, np.int64))
        names = [b.name(g) for g in "iofc"]
        b.nodes.append(helper.make_node("Split", [gates, split], names, axis=1,
                                        name=b.name("Split")))
        i, o, f = (b.op("Sigmoid", [n]) for n in names[:3])
        cand = b.op("Tanh", [names[3]])
        c = b.op("Add", [b.op("Mul", [f, c]), b.op("Mul", [i, cand])])
        return b.op("Mul", [o, b.op("Tanh", [c])]), c
    # GRU, gates z, r, h
    split = b.const("split", np.array([hidden] * 3, np.int64))
    xs = [b.name(g) for g in ("xz", "xr", "xh")]
    b.nodes.append(helper.make_node("Split", [x_t, split], xs, axis=1, name=b.name("Split")))
    r_zr = b.const("R_zr_t", r[:2 * hidden].T.copy())
    r_h = b.const("R_h_t", r[2 * hidden:].T.copy())
    hzr = b.op("MatMul", [h, r_zr])
    hs = [b.name(g) for g in ("hz", "hr")]
    b.nodes.append(helper.make_node("Split", [hzr, b.const("split", np.array(
        [hidden] * 2, np.int64))], hs, axis=1, name=b.name("Split")))
    z = b.op("Sigmoid", [b.op("Add", [xs[0], hs[0]])])
    rr = b.op("Sigmoid", [b.op("Add", [xs[1], hs[1]])])
    if rb_h is not None:  # linear_before_reset: r * (h R_h^T + Rb_h)
        hh = b.op("Mul", [rr, b.op("Add", [b.op("MatMul", [h, r_h]), b.const("Rb_h", rb_h)])])
    else:
        hh = b.op("MatMul", [b.op("Mul", [rr, h]), r_h])
    cand = b.op("Tanh", [b.op("Add", [xs[2], hh])])
    one = b.const("one", np.array(1.0, np.float32))
    return b.op("Add", [b.op("Mul", [b.op("Sub", [one, z]), cand]), b.op("Mul", [z, h])]), None
