"""Control flow a converter can read: ``If`` nodes folded where their condition is static,
and the outer weights that remaining branches read turned into Constant nodes.

* ``fold-ifs``: every ``If`` whose condition follows from constants and static shapes is
  replaced by the branch it takes (``stages.graph.fold_constant_ifs``, which the graph
  preparation runs too; a model prepared less, e.g. the minimal one, may still hold them).
* ``subgraph-constants``: initializers of the main graph that only If/Loop/Scan bodies
  read become Constant nodes of the main graph. Passes that prune initializers by the main
  graph's nodes alone drop them; pnnx then hands its ONNX Runtime a graph it rejects ("Bad
  node spec ... OpType: If") and crashes. With Constant nodes it converts, and leaves a
  data-dependent If for the check of layers the runtime lacks to name.
"""

from __future__ import annotations

import onnx
from onnx import helper

from edgepack.stages import graph as graph_ops
from edgepack.stages.rewrites._graph import all_inputs, subgraphs
from edgepack.stages.rewrites.base import Rewrite


class FoldIfs(Rewrite):
    name = "fold-ifs"

    def applies(self, model: onnx.ModelProto) -> bool:
        return any(n.op_type == "If" for n in model.graph.node)

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
        return graph_ops.fold_constant_ifs(model)


def outer_weights(model: onnx.ModelProto) -> set[str]:
    """Initializers of the main graph that a subgraph reads."""
    inits = {t.name for t in model.graph.initializer}
    return {name for n in model.graph.node for g in subgraphs(n)
            for name in all_inputs(g.node) & inits}


class SubgraphConstants(Rewrite):
    name = "subgraph-constants"

    def applies(self, model: onnx.ModelProto) -> bool:
        return bool(outer_weights(model))

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
        model = onnx.ModelProto.FromString(model.SerializeToString())
        names = outer_weights(model)
        if not names:
            return model, []
        keep = [t for t in model.graph.initializer if t.name not in names]
        consts = [helper.make_node("Constant", [], [t.name], value=t)
                  for t in model.graph.initializer if t.name in names]
        del model.graph.initializer[:]
        model.graph.initializer.extend(keep)
        nodes = [*consts, *model.graph.node]
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        return model, [f"{len(consts)} initializer(s) read inside If/Loop/Scan bodies as "
                       "Constant nodes"]
