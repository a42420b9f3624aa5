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


def _constants(graph: onnx.GraphProto, shapes: dict[str, list] | None = None
               ) -> dict[str, onnx.NodeProto | onnx.TensorProto]:
    """Values of the main graph computable from initializers and Constant nodes alone, and,
    given the graph's inferred ``shapes``, from static shapes: the output of a ``Shape`` or
    ``Size`` node whose input's shape is static is a constant (as a TensorProto) too."""
    known: dict = {init.name: init for init in graph.initializer}
    inputs = {i.name for i in graph.input} - set(known)
    changed = True
    while changed:
        changed = False
        for node in graph.node:
            if any(o in known for o in node.output) or not node.output:
                continue
            static = _static_shape_value(node, shapes or {})
            if static is not None:
                known[node.output[0]] = numpy_helper.from_array(static, node.output[0])
                changed = True
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


def _static_shape_value(node: onnx.NodeProto, shapes: dict[str, list]) -> np.ndarray | None:
    """What a Shape or Size node computes when its input's shape is static, else None."""
    if node.op_type not in ("Shape", "Size") or node.domain not in ("", "ai.onnx"):
        return None
    shape = shapes.get(node.input[0])
    if shape is None or not all(isinstance(d, int) and d >= 0 for d in shape):
        return None
    if node.op_type == "Size":
        return np.array(int(np.prod(shape)), np.int64)
    attrs = {a.name: a.i for a in node.attribute}
    return np.array(shape[attrs.get("start", 0):attrs.get("end", len(shape))], np.int64)


def _evaluate(model: onnx.ModelProto, names: list[str], known: dict | None = None
              ) -> dict[str, np.ndarray]:
    """Values of constant tensors ``names`` (computed by ONNX Runtime from the constants)."""
    import onnxruntime

    graph = model.graph
    known = _constants(graph) if known is None else known
    needed, todo = set(), list(names)
    while todo:
        name = todo.pop()
        producer = known.get(name)
        if isinstance(producer, onnx.NodeProto) and id(producer) not in needed:
            needed.add(id(producer))
            todo.extend(x for x in producer.input if x)
    nodes = [n for n in graph.node if id(n) in needed]
    used = {x for n in nodes for x in n.input} | set(names)
    inits = [known[n] for n in sorted(used) if isinstance(known.get(n), onnx.TensorProto)]
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
    """Inline the taken branch of every ``If`` whose condition is constant, until none is.

    A condition is constant when it follows from initializers, Constant nodes and fixed
    inputs alone, or also from static shapes (``Shape``/``Size`` of a tensor whose shape is
    known once ``--input-shape`` fixes the inputs: a rank or length check)."""
    model = _copy(model)
    changed = []
    while any(n.op_type == "If" for n in model.graph.node):
        plain = _constants(model.graph)
        target = next((n for n in model.graph.node if n.op_type == "If"
                       and n.input[0] in plain), None)
        known = plain
        if target is None:  # shape inference only when constants alone do not decide
            known = _constants(model.graph, _shapes(model))
            target = next((n for n in model.graph.node if n.op_type == "If"
                           and n.input[0] in known), None)
        if target is None:
            break
        value = _evaluate(model, [target.input[0]], known)[target.input[0]]
        cond = bool(np.asarray(value).reshape(-1)[0])
        branch = next(a.g for a in target.attribute
                      if a.name == ("then_branch" if cond else "else_branch"))
        _inline(model.graph, target, branch)
        why = "condition constant" if known is plain else \
            "condition constant once the input shapes are static"
        changed.append(f"If '{target.name or target.output[0]}' folded to its "
                       f"{'then' if cond else 'else'} branch ({why})")
    return model, changed


def _inline(graph: onnx.GraphProto, node: onnx.NodeProto, branch: onnx.GraphProto) -> None:
    """Replace ``node`` (an If) in ``graph`` by ``branch``'s nodes, renaming what the branch
    defines so that nothing clashes with the outer graph (also where the branch's own
    subgraphs, e.g. a nested If, refer to it)."""
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
        copy.name = prefix + (n.name or next((o for o in n.output if o), n.op_type))
        copy.input[:] = [rename.get(x, x) for x in n.input]
        copy.output[:] = [rename.get(x, x) for x in n.output]
        for sub in _subgraphs(copy):
            _rename_outer(sub, rename)
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


def _subgraphs(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    found = []
    for a in node.attribute:
        found.extend([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs))
    return found


def _rename_outer(g: onnx.GraphProto, rename: dict[str, str]) -> None:
    """Apply ``rename`` to the outer-scope values a subgraph refers to: its nodes' inputs,
    outputs that pass an outer value through, and its own subgraphs."""
    local = ({o for n in g.node for o in n.output} | {i.name for i in g.initializer}
             | {i.name for i in g.input})
    outer = {k: v for k, v in rename.items() if k not in local}
    for n in g.node:
        n.input[:] = [outer.get(x, x) for x in n.input]
        for sub in _subgraphs(n):
            _rename_outer(sub, outer)
    for out in g.output:
        out.name = outer.get(out.name, out.name)


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
        prune_initializers(model.graph)
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


def prune_initializers(graph: onnx.GraphProto) -> None:
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


def default_opset(model: onnx.ModelProto) -> int | None:
    """The model's opset of the default (ai.onnx) domain, or None when it imports none."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


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
    version = default_opset(model)
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


SHAPE_ONLY = {"Shape", "Size"}  # ops that read only their input's shape, not its values


def branch_inputs(model: onnx.ModelProto) -> list[str]:
    """Control inputs: graph inputs holding a single value (a sample rate, a mode switch)
    whose value decides some ``If`` condition, also one nested in a branch. The candidates
    for ``--fix-input``. An input that a condition reads only through its shape (a rank or
    batch check) is not one: ``--input-shape`` already fixes that, and freezing a real data
    or state input would change what the model computes."""
    graphs = _all_graphs(model.graph)
    producers = {o: n for g in graphs for n in g.node for o in n.output}
    inits = {i.name for i in model.graph.initializer}
    inputs = {i.name: i for i in model.graph.input if i.name not in inits}
    found = set()
    for node in (n for g in graphs for n in g.node if n.op_type == "If"):
        todo, seen = [node.input[0]], set()
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            if name in inputs:
                found.add(name)
            elif name in producers and producers[name].op_type not in SHAPE_ONLY:
                todo.extend(x for x in producers[name].input if x)
    return sorted(n for n in found if _single_value(inputs[n]))


def _all_graphs(graph: onnx.GraphProto) -> list[onnx.GraphProto]:
    found, todo = [], [graph]
    while todo:
        g = todo.pop()
        found.append(g)
        for node in g.node:
            todo.extend(_subgraphs(node))
    return found


def _single_value(value: onnx.ValueInfoProto) -> bool:
    t = value.type.tensor_type
    if not t.HasField("shape"):
        return False  # rank unknown: nothing says it is a single value
    dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    return all(d == 1 for d in dims)


RECURRENT_STATE = {"LSTM": (5, 6), "GRU": (5,), "RNN": (5,)}
STATE_NAMES = ("state", "hidden", "h0", "c0", "cache", "past", "memory")


def is_state_input(model: onnx.ModelProto, name: str) -> bool:
    """A float input that is a recurrent state: it starts at zeros."""
    if any(word in name.lower() for word in STATE_NAMES):
        return True
    return any(index in RECURRENT_STATE.get(node.op_type, ())
               for node, index in _reached(model.graph, name))
