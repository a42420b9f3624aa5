"""Graph preparation: small, checked rewrites that converters need and runtimes do not mind.

Each step takes an ``onnx.ModelProto`` and returns a new one plus what it changed (nothing
means the step did not apply). The pipeline runs them in order, checks the result against the
unprepared model on sample inputs, and records every step in the report:

* ``fix_inputs``: freeze inputs the user fixed (``--fix-input NAME=VALUE``) to constants;
* ``fold_constant_ifs``: replace an ``If`` whose condition is now constant by its branch;
* ``normalize_if_conditions``: give every ``If`` a scalar condition (some converters reject
  a condition of shape ``[1, 1]``);
* ``rnn_default_inputs``: explicit zero bias and initial states for LSTM/GRU/RNN nodes that
  leave them out;
* ``constants_to_initializers``, ``static_reshapes``, ``converter_safe_names``,
  ``static_output_shapes``: weights as initializers, Reshape targets without 0/-1, node names
  converters accept as scopes, outputs declared with the shapes they really have;
* ``upgrade_opset``: bring an old opset (< 13) to 13 and drop initializers listed as inputs;
* ``standard_ops``: replace ``com.microsoft`` ops that have a standard equivalent
  (``DynamicQuantizeLSTM`` → ``LSTM``) for targets that only run standard ops.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

# ops through which a tensor keeps its values (only its layout or type changes)
VALUE_PRESERVING = {"Cast", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Identity", "Expand",
                    "Transpose", "Slice", "Concat", "Tile", "Gather", "Split"}
OLDEST_OPSET = 13  # per-channel quantization (DequantizeLinear axis) needs 13
UPGRADE_TO = 13


def fix_inputs(model: onnx.ModelProto, values: dict[str, np.ndarray]) -> tuple[
        onnx.ModelProto, list[str]]:
    """Replace the named graph inputs by initializers holding ``values``."""
    model = _copy(model)
    changed = []
    for name, value in values.items():
        for i, inp in enumerate(model.graph.input):
            if inp.name == name:
                del model.graph.input[i]
                model.graph.initializer.append(numpy_helper.from_array(value, name))
                shown = value.reshape(-1)[:4].tolist()
                changed.append(f"input '{name}' fixed to {shown if value.size > 1 else shown[0]}")
                break
    return model, changed


def _constants(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto | onnx.TensorProto]:
    """Values of the main graph computable from initializers and Constant nodes alone."""
    known: dict = {init.name: init for init in graph.initializer}
    inputs = {i.name for i in graph.input} - set(known)
    changed = True
    while changed:
        changed = False
        for node in graph.node:
            if any(o in known for o in node.output) or not node.output:
                continue
            if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                   for a in node.attribute):
                continue
            if node.op_type in ("RandomNormal", "RandomUniform", "RandomNormalLike",
                                "RandomUniformLike", "Multinomial"):
                continue
            if all((not x) or (x in known and x not in inputs) for x in node.input):
                for o in node.output:
                    known[o] = node
                changed = True
    return known


def _evaluate(model: onnx.ModelProto, names: list[str]) -> dict[str, np.ndarray]:
    """Values of constant tensors ``names`` (computed by ONNX Runtime from the constants)."""
    import onnxruntime

    graph = model.graph
    known = _constants(graph)
    needed, todo = set(), list(names)
    while todo:
        name = todo.pop()
        producer = known.get(name)
        if isinstance(producer, onnx.NodeProto) and id(producer) not in needed:
            needed.add(id(producer))
            todo.extend(x for x in producer.input if x)
    nodes = [n for n in graph.node if id(n) in needed]
    used = {x for n in nodes for x in n.input} | set(names)
    inits = [i for i in graph.initializer if i.name in used]
    outputs = [helper.make_empty_tensor_value_info(n) for n in names]
    sub = helper.make_graph(nodes, "constants", [], outputs, initializer=inits)
    small = helper.make_model(sub, opset_imports=list(model.opset_import))
    small.ir_version = model.ir_version
    direct = {n: numpy_helper.to_array(known[n]) for n in names
              if isinstance(known[n], onnx.TensorProto)}
    rest = [n for n in names if n not in direct]
    if not rest:
        return direct
    session = onnxruntime.InferenceSession(small.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    return {**direct, **dict(zip(rest, session.run(rest, {}), strict=True))}


def fold_constant_ifs(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """Inline the taken branch of every ``If`` whose condition is constant, until none is."""
    model = _copy(model)
    changed = []
    while True:
        known = _constants(model.graph)
        target = next((n for n in model.graph.node if n.op_type == "If" and n.input[0] in known),
                      None)
        if target is None:
            return model, changed
        cond = bool(np.asarray(_evaluate(model, [target.input[0]])[target.input[0]]).reshape(-1)[0])
        branch = next(a.g for a in target.attribute
                      if a.name == ("then_branch" if cond else "else_branch"))
        _inline(model.graph, target, branch)
        changed.append(f"If '{target.name or target.output[0]}' folded to its "
                       f"{'then' if cond else 'else'} branch (condition constant)")


def _inline(graph: onnx.GraphProto, node: onnx.NodeProto, branch: onnx.GraphProto) -> None:
    """Replace ``node`` (an If) in ``graph`` by ``branch``'s nodes, renaming what the branch
    defines so that nothing clashes with the outer graph."""
    prefix = (node.name or node.output[0]) + "/"
    defined = {o for n in branch.node for o in n.output if o} | {i.name for i in branch.initializer}
    rename = {name: prefix + name for name in defined}
    new_nodes = []
    for init in branch.initializer:
        copy = onnx.TensorProto()
        copy.CopyFrom(init)
        copy.name = rename[init.name]
        graph.initializer.append(copy)
    for n in branch.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(n)
        copy.name = prefix + (n.name or n.output[0])
        copy.input[:] = [rename.get(x, x) for x in n.input]
        copy.output[:] = [rename.get(x, x) for x in n.output]
        new_nodes.append(copy)
    for out, branch_out in zip(node.output, branch.output, strict=True):
        new_nodes.append(helper.make_node("Identity", [rename.get(branch_out.name,
                                                                  branch_out.name)], [out],
                                          name=prefix + "out/" + out))
    index = list(graph.node).index(node)
    nodes = list(graph.node)
    nodes[index:index + 1] = new_nodes
    del graph.node[:]
    graph.node.extend(nodes)


def normalize_if_conditions(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """Reshape every ``If`` condition with a non-scalar static shape to a scalar."""
    model = _copy(model)
    inferred = _shapes(model)
    changed = []
    while True:  # one If at a time: rebuilding the node list copies the nodes
        node = next((n for n in model.graph.node if n.op_type == "If"
                     and inferred.get(n.input[0])), None)
        if node is None:
            return model, changed
        shape = inferred[node.input[0]]
        scalar_shape = f"{node.input[0]}/scalar_shape"
        scalar = f"{node.input[0]}/scalar"
        model.graph.initializer.append(numpy_helper.from_array(np.zeros(0, np.int64),
                                                               scalar_shape))
        reshape = helper.make_node("Reshape", [node.input[0], scalar_shape], [scalar],
                                   name=f"{node.name or node.output[0]}/scalar_condition")
        node.input[0] = scalar  # before the list is rebuilt: extend() copies the nodes
        nodes = list(model.graph.node)
        nodes.insert(nodes.index(node), reshape)
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        changed.append(f"If '{node.name or node.output[0]}' condition {list(shape)} made a "
                       "scalar")


def constants_to_initializers(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """Constant nodes holding a tensor become initializers (quantizers and converters look for
    weights among the initializers; some exporters keep every weight in a Constant node)."""
    model = _copy(model)
    keep, moved = [], 0
    for node in model.graph.node:
        value = next((a.t for a in node.attribute if a.name == "value"), None)
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and value is not None \
                and len(node.attribute) == 1:
            tensor = onnx.TensorProto()
            tensor.CopyFrom(value)
            tensor.name = node.output[0]
            model.graph.initializer.append(tensor)
            moved += 1
        else:
            keep.append(node)
    if not moved:
        return model, []
    del model.graph.node[:]
    model.graph.node.extend(keep)
    return model, [f"{moved} Constant node(s) made initializers"]


def static_reshapes(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """Reshape targets written with 0 ("copy this dim") or -1 become the static shape the
    node really produces (converters that merge reshapes get 0 wrong)."""
    model = _copy(model)
    shapes = _shapes(model)
    inits = {i.name: i for i in model.graph.initializer}
    changed = []
    for node in model.graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[1] not in inits:
            continue
        if any(a.name == "allowzero" and a.i for a in node.attribute):
            continue
        target = numpy_helper.to_array(inits[node.input[1]])
        out = shapes.get(node.output[0])
        if not (target == 0).any() and not (target == -1).any():
            continue
        if not out or not all(isinstance(d, int) and d > 0 for d in out) \
                or len(out) != target.size:
            continue
        name = f"{node.output[0]}/static_shape"
        model.graph.initializer.append(numpy_helper.from_array(np.array(out, np.int64), name))
        node.input[1] = name
        changed.append(f"Reshape '{node.name or node.output[0]}' to {target.tolist()} made "
                       f"{list(out)}")
    if changed:
        _prune_initializers(model.graph)
    return model, changed


SCOPE_CHARS = re.compile(r"[^A-Za-z0-9_./>-]")


def converter_safe_names(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """Node names with characters some converters refuse as scope names (e.g. '@') get
    them replaced, and every node gets a unique name; tensor names are left alone."""
    model = _copy(model)
    used: set[str] = set()
    renamed = 0
    for i, node in enumerate(model.graph.node):
        name = SCOPE_CHARS.sub("_", node.name) if node.name else f"{node.op_type}_{i}"
        while name in used:
            name += "_"
        used.add(name)
        if name != node.name:
            renamed += node.name != ""
            node.name = name
    return model, [f"{renamed} node name(s) made converter-safe"] if renamed else []


def static_output_shapes(model: onnx.ModelProto, actual: dict[str, list[np.ndarray]]
                         ) -> tuple[onnx.ModelProto, list[str]]:
    """Declare each output's shape as the model really produces it, where every sample gives
    the same shape (converters bind outputs by their declared shapes)."""
    model = _copy(model)
    changed = []
    for out in model.graph.output:
        shapes = {v.shape for v in actual.get(out.name, [])}
        if len(shapes) != 1:
            continue
        shape = shapes.pop()
        dims = out.type.tensor_type.shape.dim
        declared = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                    for d in dims]
        if declared == list(shape):
            continue
        del dims[:]
        for size in shape:
            dims.add().dim_value = size
        changed.append(f"output '{out.name}' declared {declared}, produces {list(shape)}")
    return model, changed


GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def rnn_default_inputs(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """Give recurrent nodes (LSTM, GRU, RNN) an explicit zero bias and zero initial states
    where they are left out (valid ONNX, but converters index them unconditionally)."""
    model = _copy(model)
    shapes = _shapes(model)
    changed = []
    for node in model.graph.node:
        gates = GATES.get(node.op_type)
        attrs = {a.name: a for a in node.attribute}
        hidden = attrs["hidden_size"].i if "hidden_size" in attrs else 0
        if gates is None or not hidden:
            continue
        dirs = 2 if "direction" in attrs and attrs["direction"].s == b"bidirectional" else 1
        layout = attrs["layout"].i if "layout" in attrs else 0
        x_shape = shapes.get(node.input[0]) or []
        batch = x_shape[1 - layout] if len(x_shape) == 3 else None
        inputs = list(node.input) + [""] * max(0, 7 - len(node.input))
        prefix = f"{node.name or node.output[-1]}/"
        added = []
        defaults = {3: ("bias", np.zeros((dirs, 2 * gates * hidden), np.float32))}
        if batch:
            state = (dirs, batch, hidden) if layout == 0 else (batch, dirs, hidden)
            defaults[5] = ("initial_h", np.zeros(state, np.float32))
            if node.op_type == "LSTM":
                defaults[6] = ("initial_c", np.zeros(state, np.float32))
        for index, (what, value) in defaults.items():
            if not inputs[index]:
                model.graph.initializer.append(numpy_helper.from_array(value, prefix + what))
                inputs[index] = prefix + what
                added.append(what)
        if node.output and not node.output[0]:  # the sequence output, unused but produced
            node.output[0] = prefix + "Y"
            added.append("named Y output")
        if added:
            while inputs and not inputs[-1]:
                inputs.pop()
            del node.input[:]
            node.input.extend(inputs)
            changed.append(f"{node.op_type} '{node.name or node.output[-1]}' given explicit "
                           f"zero {', '.join(added)}")
    return model, changed


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
        _prune_initializers(model.graph)
    return model, changed


def _prune_initializers(graph: onnx.GraphProto) -> None:
    """Drop initializers that no node (or subgraph) uses and that are not outputs."""
    used = {o.name for o in graph.output}
    todo = [graph]
    while todo:
        g = todo.pop()
        for n in g.node:
            used.update(n.input)
            for a in n.attribute:
                todo.extend([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs))
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)


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


REWRITES: dict[str, Callable[[onnx.ModelProto], tuple[onnx.ModelProto, list[str]]]] = {
    "unroll-rnn": unroll_rnn,
}


def rewrite_applies(model: onnx.ModelProto, name: str) -> bool:
    """Whether a strategy's rewrite would change anything in ``model`` (cheaply)."""
    if name == "unroll-rnn":
        return any(n.op_type in GATES for n in model.graph.node)
    return True


def upgrade_opset(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """Opset < 13 → 13 (converters handle old opsets badly, per-channel int8 needs 13);
    initializers listed as graph inputs (IR < 4 style) are no longer listed."""
    model = _copy(model)
    changed = []
    inits = {i.name for i in model.graph.initializer}
    listed = [i for i in model.graph.input if i.name in inits]
    if listed:
        keep = [i for i in model.graph.input if i.name not in inits]
        del model.graph.input[:]
        model.graph.input.extend(keep)
        changed.append(f"{len(listed)} initializer(s) no longer listed as graph inputs")
    version = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if version is not None and version < OLDEST_OPSET:
        from onnx import version_converter

        model = version_converter.convert_version(model, UPGRADE_TO)
        changed.append(f"opset {version} upgraded to {UPGRADE_TO}")
    return model, changed


def standard_ops(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """``com.microsoft`` ops with a standard equivalent, replaced by it."""
    model = _copy(model)
    changed = []
    inits = {i.name: i for i in model.graph.initializer}
    for node in list(model.graph.node):
        if node.domain == "com.microsoft" and node.op_type == "DynamicQuantizeLSTM":
            if _dequantize_lstm(model.graph, node, inits):
                changed.append(f"DynamicQuantizeLSTM '{node.name}' → LSTM with float weights")
    return model, changed


def _dequantize_lstm(graph: onnx.GraphProto, node: onnx.NodeProto, inits: dict) -> bool:
    # inputs: X, W, R, B, sequence_lens, initial_h, initial_c, P,
    #         W_scale, W_zero_point, R_scale, R_zero_point; W is [dirs, input, 4*hidden]
    names = list(node.input) + [""] * (12 - len(node.input))
    if not all(names[i] in inits for i in (1, 2, 8, 9, 10, 11)):
        return False

    def dequantized(q: int, scale: int, zero: int) -> np.ndarray:
        w = numpy_helper.to_array(inits[names[q]]).astype(np.float32)
        s = numpy_helper.to_array(inits[names[scale]]).astype(np.float32)
        z = numpy_helper.to_array(inits[names[zero]]).astype(np.float32)
        s = s.reshape(s.shape[0], 1, -1) if s.ndim == 2 else s.reshape(-1, 1, 1)
        z = z.reshape(z.shape[0], 1, -1) if z.ndim == 2 else z.reshape(-1, 1, 1)
        return ((w - z) * s).transpose(0, 2, 1)

    w_name, r_name = names[1] + "/float", names[2] + "/float"
    graph.initializer.extend([numpy_helper.from_array(dequantized(1, 8, 9), w_name),
                              numpy_helper.from_array(dequantized(2, 10, 11), r_name)])
    lstm = helper.make_node("LSTM", [names[0], w_name, r_name, *names[3:8]], list(node.output),
                            name=node.name)
    lstm.attribute.extend(node.attribute)
    nodes = list(graph.node)
    nodes[nodes.index(node)] = lstm
    del graph.node[:]
    graph.node.extend(nodes)
    return True


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def _shapes(model: onnx.ModelProto) -> dict[str, list]:
    """Static shapes of the graph's values, as far as shape inference knows them."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # an unknown op stops inference; what is known is still useful
        inferred = model
    shapes = {}
    for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        t = v.type.tensor_type
        if t.HasField("shape"):
            shapes[v.name] = [d.dim_value if d.HasField("dim_value") else None
                              for d in t.shape.dim]
    for init in inferred.graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


Step = Callable[[onnx.ModelProto], tuple[onnx.ModelProto, list[str]]]
STEPS: dict[str, Step] = {
    "fold-ifs": fold_constant_ifs,
    "if-conditions": normalize_if_conditions,
    "upgrade-opset": upgrade_opset,
}


# --------------------------------------------------------------------------- input analysis
def consumers(graph: onnx.GraphProto) -> dict[str, list[tuple[onnx.NodeProto, int]]]:
    """value name -> (node, input index) of every use in the main graph."""
    uses: dict[str, list] = {}
    for node in graph.node:
        for i, name in enumerate(node.input):
            uses.setdefault(name, []).append((node, i))
    return uses


def _reached(graph: onnx.GraphProto, start: str) -> list[tuple[onnx.NodeProto, int]]:
    """Uses of ``start`` and of the values it flows into through value-preserving ops."""
    uses = consumers(graph)
    found, todo, seen = [], [start], {start}
    while todo:
        for node, index in uses.get(todo.pop(), []):
            found.append((node, index))
            if node.op_type in VALUE_PRESERVING and not (node.op_type == "Gather" and index == 1):
                for out in node.output:
                    if out not in seen:
                        seen.add(out)
                        todo.append(out)
    return found


def integer_input_range(model: onnx.ModelProto, name: str) -> tuple[int, int] | None:
    """The values an integer input may take, as far as the graph tells: indices of a Gather
    (an embedding table's rows), 0/1 for masks; None when it cannot tell."""
    if "mask" in name.lower():
        return (0, 1)
    shapes = _shapes(model)
    highs = []
    for node, index in _reached(model.graph, name):
        if node.op_type in ("Gather", "GatherElements") and index == 1:
            axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
            data = shapes.get(node.input[0])
            if data and -len(data) <= axis < len(data) and data[axis]:
                highs.append(data[axis] - 1)
        elif node.op_type == "OneHot" and index == 0:
            return None
    return (0, min(highs)) if highs else None


def branch_inputs(model: onnx.ModelProto) -> list[str]:
    """Graph inputs that some If condition depends on (candidates for --fix-input)."""
    producers = {o: n for n in model.graph.node for o in n.output}
    inputs = {i.name for i in model.graph.input} - {i.name for i in model.graph.initializer}
    found = set()
    for node in model.graph.node:
        if node.op_type != "If":
            continue
        todo, seen = [node.input[0]], set()
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            if name in inputs:
                found.add(name)
            elif name in producers:
                todo.extend(x for x in producers[name].input if x)
    return sorted(found)


RECURRENT_STATE = {"LSTM": (5, 6), "GRU": (5,), "RNN": (5,)}
STATE_NAMES = ("state", "hidden", "h0", "c0", "cache", "past", "memory")


def is_state_input(model: onnx.ModelProto, name: str) -> bool:
    """A float input that is a recurrent state: it starts at zeros."""
    if any(word in name.lower() for word in STATE_NAMES):
        return True
    return any(index in RECURRENT_STATE.get(node.op_type, ())
               for node, index in _reached(model.graph, name))
