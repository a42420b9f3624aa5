"""Graph rewrites a lowering strategy asks for (``Strategy.rewrites``), one registry of
objects: each says cheaply whether it would change a model (a strategy whose rewrites change
nothing is not tried) and applies itself, returning the new model and what it changed.

A new rewrite is a module in this package defining a :class:`~edgepack.stages.rewrites.base.
Rewrite` subclass, plus its entry in :func:`registry`.
"""

from __future__ import annotations

from functools import cache

import onnx

from edgepack.stages.rewrites.base import Rewrite
from edgepack.stages.rewrites.booleans import BooleansAsFloats, FloatInputs
from edgepack.stages.rewrites.broadcasts import ConstantBroadcasts
from edgepack.stages.rewrites.gathers import EmbeddingLookups, GathersAsSlices
from edgepack.stages.rewrites.opset import Opset17
from edgepack.stages.rewrites.pads import ExplicitPads
from edgepack.stages.rewrites.reductions import SumsAsMeans
from edgepack.stages.rewrites.slices import SliceForms
from edgepack.stages.rewrites.subgraphs import FoldIfs, SubgraphConstants
from edgepack.stages.rewrites.unroll_rnn import UnrollRnn

__all__ = ["Rewrite", "all_apply", "apply_all", "apply_where_they_apply", "get", "registry"]


@cache
def registry() -> dict[str, Rewrite]:
    return {r.name: r for r in (UnrollRnn(), FoldIfs(), ExplicitPads(), GathersAsSlices(),
                                SliceForms(), EmbeddingLookups(), SubgraphConstants(),
                                BooleansAsFloats(), FloatInputs(), ConstantBroadcasts(),
                                Opset17(), SumsAsMeans())}


def get(name: str) -> Rewrite:
    return registry()[name]


def all_apply(model: onnx.ModelProto, names: tuple[str, ...]) -> bool:
    """Whether every rewrite named would change ``model``."""
    return all(get(name).applies(model) for name in names)


def apply_where_they_apply(model: onnx.ModelProto, names: tuple[str, ...]
                           ) -> tuple[onnx.ModelProto, list[str]]:
    """``model`` after each named rewrite that changes it, in order, and what each changed."""
    notes = []
    for name in names:
        if get(name).applies(model):
            model, changes = get(name).apply(model)
            notes += [f"{name}: {c}" for c in changes]
    return model, notes


def apply_all(model: onnx.ModelProto, names: tuple[str, ...]
              ) -> tuple[onnx.ModelProto, list[str]]:
    """``model`` after the named rewrites, in order, and notes of what each changed."""
    notes = []
    for name in names:
        model, changes = get(name).apply(model)
        notes += [f"{name}: {c}" for c in changes]
    return model, notes
