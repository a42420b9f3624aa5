"""When pnnx crashes: the ONNX node it crashed on, in one line.

pnnx's ONNX front end runs the graph once in its own ONNX Runtime on made-up inputs (float
0.1, int64 7; other integer and bool inputs left as they happen to be in memory) and reads
the results without checking that the run succeeded: a graph that cannot run on such inputs
kills pnnx (SIGSEGV). Two causes are recognised before any bisection, in milliseconds:

* the made-up run fails: replayed here in ONNX Runtime, whose error names the node (e.g. a
  2-row token-type table indexed by 7);
* an If/Loop/Scan body reads an initializer of the main graph, which pnnx loses.

For anything else, :func:`bisect` runs pnnx on growing prefixes of the graph (the first k
nodes, every tensor still needed later made an output), halving the range each time: the
smallest prefix that crashes ends at the node pnnx dies on.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from edgepack import procs

MADE_UP = {np.dtype(np.float32): 0.1, np.dtype(np.int64): 7}
MAX_RUNS = 14  # pnnx runs a bisection may take (2**14 nodes)


def crashed(done: procs.Finished) -> bool:
    """pnnx died on a signal (or hung), rather than failing with a message."""
    return done.returncode is None or done.returncode < 0


def named(node: onnx.NodeProto) -> str:
    return f"{node.op_type} node '{node.name or node.output[0]}'"


def predict(model: onnx.ModelProto, inputs: list[dict]) -> str | None:
    """A known cause of a pnnx crash in ``model`` (given its inputs' specs), naming the node,
    or None."""
    inits = {t.name for t in model.graph.initializer}
    for node in model.graph.node:
        for g in (a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH):
            local = {t.name for t in g.initializer} | {o for n in g.node for o in n.output} \
                | {i.name for i in g.input}
            outer = sorted({x for n in g.node for x in n.input if x and x not in local} & inits)
            if outer:
                return (f"{named(node)} reads the main graph's initializer(s) "
                        f"{', '.join(outer[:3])} inside its branches, which pnnx loses")
    return _made_up_run(model, inputs)


def _made_up_run(model: onnx.ModelProto, inputs: list[dict]) -> str | None:
    """Replay pnnx's run on made-up inputs; the failing node and ONNX Runtime's error."""
    import onnxruntime as ort

    feeds = {}
    for spec in inputs:
        dtype = np.dtype(spec["dtype"])
        feeds[spec["name"]] = np.full(spec["shape"], MADE_UP.get(dtype, 0), dtype)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4
    try:
        session = ort.InferenceSession(model.SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])
        session.run(None, {k: v for k, v in feeds.items()
                           if k in {i.name for i in session.get_inputs()}})
    except Exception as e:  # noqa: BLE001 - any failure is the finding
        text = str(e)
        found = re.search(r"running (\w+) node\. Name:'([^']*)'", text)
        where = f"{found.group(1)} node '{found.group(2)}'" if found else "the graph"
        last = text.strip().splitlines()[-1] if text.strip() else type(e).__name__
        return (f"{where} fails on the made-up inputs pnnx runs the graph with (float 0.1, "
                f"int64 7): {last[:160]}")
    return None


def prefix(model: onnx.ModelProto, k: int) -> onnx.ModelProto:
    """The first ``k`` nodes, with every tensor they make that a later node or the graph
    reads as an output."""
    g = model.graph
    nodes = list(g.node)[:k]
    later = {x for n in list(g.node)[k:] for x in n.input} | {o.name for o in g.output}
    made = [o for n in nodes for o in n.output if o]
    outputs = [o for o in made if o in later] or made[-1:]
    part = onnx.ModelProto()
    part.CopyFrom(model)
    del part.graph.node[:]
    part.graph.node.extend(nodes)
    del part.graph.output[:]
    part.graph.output.extend(helper.make_empty_tensor_value_info(o) for o in outputs)
    return part


def bisect(model: onnx.ModelProto, run) -> tuple[onnx.NodeProto | None, int]:
    """The node pnnx crashes on (None: it does not crash on the whole graph, or the search
    ran out of runs) and how many pnnx runs it took. ``run(model_path)`` runs pnnx."""
    runs, low, high = 0, 0, len(model.graph.node)  # prefix(low) runs, prefix(high) crashes
    with tempfile.TemporaryDirectory() as tmp:
        while high - low > 1 and runs < MAX_RUNS:
            mid = (low + high) // 2
            path = Path(tmp) / f"prefix{mid}.onnx"
            onnx.save(prefix(model, mid), str(path))
            runs += 1
            if crashed(run(path)):
                high = mid
            else:
                low = mid
    if high - low > 1:
        return None, runs
    return model.graph.node[high - 1], runs
