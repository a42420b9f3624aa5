"""The contract of a graph rewrite."""

from __future__ import annotations

import onnx


class Rewrite:
    """One graph rewrite, by name."""

    name: str = ""

    def applies(self, model: onnx.ModelProto) -> bool:
        """Whether :meth:`apply` would change ``model`` (cheap: no shape inference)."""
        return True

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
        raise NotImplementedError


class NodeRewrite(Rewrite):
    """A rewrite of the nodes of one op type, each on its own: :meth:`rewrite` changes one
    node (in the graph, through ``g``) and says what it did, or returns None."""

    op_type: str = ""

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
        from edgepack.stages.rewrites._graph import Graph

        g = Graph(model)
        changes = []
        for node in [n for n in g.graph.node if n.op_type == self.op_type]:
            what = self.rewrite(g, node)
            if what:
                changes.append(f"{self.op_type} '{node.name or node.output[0]}': {what}")
        return g.model, changes

    def rewrite(self, g, node: onnx.NodeProto) -> str | None:
        raise NotImplementedError
