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
