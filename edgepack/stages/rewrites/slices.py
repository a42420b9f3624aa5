"""``Slice`` as plain crops, flips and strides, its bounds resolved from the static shape.

Converters lower a step-1 ``Slice`` with explicit axes to a crop, and a full reversal in one
spelling to a flip; other spellings of the same operation are passed through unconverted
(pnnx: a step other than 1, or no ``axes`` input) or dropped outright (a full reversal
spelled with other bounds). Each Slice with constant bounds on a statically shaped tensor
becomes, axis by axis:

* a crop: a step-1 Slice with explicit, non-negative bounds and axes (a step-1 Slice that
  names its axes is left as it is);
* a reversal: the crop, then a Slice (-1, INT64_MIN, -1) of the reversed axes (a flip);
* a step k > 1: the crop to k·n elements (a zero Pad at the end where the axis is shorter),
  a Reshape to [1, P, n, k·Q], a crop of the last axis to [0, Q) and a Reshape back (P, Q:
  the numbers of elements over the axes before and after it), which converters lower.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from edgepack.stages.rewrites._graph import INT64_MIN, Graph, attr
from edgepack.stages.rewrites.base import Rewrite

CLAMP = 2**62  # bounds beyond any axis (INT64_MAX/MIN) clamp like Python slices


class SliceForms(Rewrite):
    name = "crop-flip-slices"

    def applies(self, model: onnx.ModelProto) -> bool:
        g = Graph(model)
        return any(_plan(g, n, shape=False) for n in g.graph.node if n.op_type == "Slice")

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
        g = Graph(model)
        changes = []
        for node in [n for n in g.graph.node if n.op_type == "Slice"]:
            plan = _plan(g, node)
            if plan is None:
                continue
            crop, flips, strides = plan
            g.replace(node, _nodes(g, node, crop, flips, strides))
            kinds = (["crop"] if crop else []) + (["flip"] if flips else []) + \
                (["stride"] if strides else [])
            changes.append(f"Slice '{node.name or node.output[0]}' as "
                           f"{' + '.join(kinds) or 'identity'}")
        return g.model, changes


def _bounds(g: Graph, node: onnx.NodeProto) -> tuple[list, list, list | None, list] | None:
    """starts, ends, axes (None: not given) and steps, when all are constant."""
    if g.opset < 10:
        starts, ends = list(attr(node, "starts")), list(attr(node, "ends"))
        return starts, ends, attr(node, "axes"), [1] * len(starts)
    values = [g.const(node.input[i]) if len(node.input) > i and node.input[i] else None
              for i in range(1, 5)]
    given = [len(node.input) > i and bool(node.input[i]) for i in range(1, 5)]
    if any(g_ and v is None for g_, v in zip(given, values, strict=True)) or not all(given[:2]):
        return None
    starts, ends = [int(x) for x in values[0]], [int(x) for x in values[1]]
    axes = [int(x) for x in values[2]] if values[2] is not None else None
    steps = [int(x) for x in values[3]] if values[3] is not None else [1] * len(starts)
    return starts, ends, axes, steps


def _plan(g: Graph, node: onnx.NodeProto, shape: bool = True):
    """(crop {axis: (lo, hi)}, axes to flip, strides [(axis, k, n)]) for a Slice that is not
    already in plain form, else None. ``shape=False``: a cheap first look, no shapes."""
    bounds = _bounds(g, node)
    if bounds is None:
        return None
    starts, ends, axes, steps = bounds
    plain = axes is not None and all(k == 1 for k in steps)
    reversal = axes is not None and steps and all(k == -1 for k in steps) and \
        all(s == -1 for s in starts) and all(e == INT64_MIN for e in ends)
    if plain or reversal:
        return None
    if not shape:
        return True
    dims = g.static_shape(node.input[0])
    if dims is None:
        return None
    rank = len(dims)
    crop, flips, strides = {}, [], []
    for s, e, a, k in zip(starts, ends, axes if axes is not None else range(len(starts)), steps,
                          strict=True):
        a %= rank
        idx = list(range(dims[a]))[slice(max(min(s, CLAMP), -CLAMP),
                                         max(min(e, CLAMP), -CLAMP), k)]
        if not idx:
            return None  # an empty slice: left as it is
        lo, hi = min(idx), max(idx) + 1
        if abs(k) == 1 or len(idx) == 1:
            if (lo, hi) != (0, dims[a]):
                crop[a] = (lo, hi)
            if k < 0 and len(idx) > 1:
                flips.append(a)
            continue
        if k > 0:  # whole groups of k where the axis allows (then no Pad is needed)
            hi = min(dims[a], lo + k * len(idx))
        else:
            flips.append(a)
        if (lo, hi) != (0, dims[a]):
            crop[a] = (lo, hi)
        strides.append((a, abs(k), len(idx)))
    return crop, flips, strides


def _nodes(g: Graph, node: onnx.NodeProto, crop: dict, flips: list, strides: list
           ) -> list[onnx.NodeProto]:
    dims = list(g.static_shape(node.input[0]))
    nodes, cur = [], node.input[0]
    if crop:
        axes = sorted(crop)
        nodes.append(g.slice(cur, [crop[a][0] for a in axes], [crop[a][1] for a in axes], axes))
        cur = nodes[-1].output[0]
        for a in axes:
            dims[a] = crop[a][1] - crop[a][0]
    if flips:
        m = len(flips)
        nodes.append(g.slice(cur, [-1] * m, [INT64_MIN] * m, sorted(flips), [-1] * m))
        cur = nodes[-1].output[0]
    for a, k, n in strides:
        cur = _stride(g, nodes, cur, dims, a, k, n)
    if not nodes:
        return [helper.make_node("Identity", [cur], [node.output[0]])]
    nodes[-1].output[0] = node.output[0]
    return nodes


def _stride(g: Graph, nodes: list, x: str, dims: list[int], a: int, k: int, n: int) -> str:
    """Every k-th element of axis ``a`` (its length k·(n-1)+1 .. k·n) by Pad/Reshape/crop."""
    if k * n > dims[a]:
        pads = [0] * (2 * len(dims))
        pads[len(dims) + a] = k * n - dims[a]
        padded = g.fresh(x + "/to_multiple")
        nodes.append(helper.make_node("Pad", [x, g.ints("pads", pads)], [padded],
                                      mode="constant"))
        x = padded
    before = int(np.prod(dims[:a]))
    after = int(np.prod(dims[a + 1:]))
    grouped = g.fresh(x + "/groups")
    nodes.append(helper.make_node("Reshape", [x, g.ints("shape", [1, before, n, k * after])],
                                  [grouped]))
    nodes.append(g.slice(grouped, [0], [after], [3]))
    dims[a] = n
    back = g.fresh(x + "/strided")
    nodes.append(helper.make_node("Reshape", [nodes[-1].output[0], g.ints("shape", dims)],
                                  [back]))
    return back
