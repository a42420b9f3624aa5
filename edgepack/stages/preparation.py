"""Prepare the imported model for lowering: fixed inputs, graph rewrites, simplification.

Every step is checked against the imported model's outputs on sample inputs and kept only
if it changes no output beyond tolerance and does not make the model much larger (constant
folding can dequantize a pre-quantized model's weights: a 4× bigger "fp32" model). A step
that fails, changes the outputs or bloats the model is recorded with the reason and skipped.
Two files come out: the fully prepared model, and a minimal one (only the fixed inputs) that
targets fall back to when a converter rejects the prepared one.
"""

from __future__ import annotations

import importlib.metadata
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from edgepack.errors import first_line
from edgepack.profiles import DEFAULT_BUDGETS
from edgepack.stages import graph, simplify
from edgepack.stages.simplify import run_onnx, worst_difference

MAX_REL_ERROR = 1e-4  # a prepared model must match the imported one this closely
MAX_GROWTH = 1.5  # ... and stay within this factor of its size
GROWTH_SLACK = 256 * 1024  # (bytes; tiny models may grow by a few constants)


@dataclass(frozen=True)
class Check:
    """How closely a step's result must match the imported model, and whether it may grow."""

    max_rel_error: float = MAX_REL_ERROR
    min_cosine: float = 0.0
    may_grow: bool = False


EXACT = Check()
# the standard-ops copy of a pre-quantized model: its weights are dequantized exactly, but
# it computes in float where the source rounds activations to int8 as it runs (ORT's
# DynamicQuantizeLSTM), so it differs from the source as any runtime's int8 rounding does:
# held to the int8 budget, as the source's bundles are; float weights make it bigger
STANDARD_OPS = Check(DEFAULT_BUDGETS["int8"].max_rel_error, DEFAULT_BUDGETS["int8"].min_cosine,
                     may_grow=True)


def prepare_model(src: Path, dst: Path, minimal: Path, standard: Path,
                  fixed: dict[str, np.ndarray], feeds: list[dict[str, np.ndarray]],
                  runnable: Path | None = None) -> dict:
    """Write the prepared model to ``dst``, the minimal one to ``minimal`` and, when the
    prepared one uses non-standard ops that have standard equivalents, a standard-ops one to
    ``standard``; return the stage record (one entry per step: what changed, or why it was
    skipped). ``runnable`` is the model as the user gave it (dynamic dimensions kept), whose
    outputs every step is checked against (default: ``src``)."""
    model = onnx.load(str(src))
    expected = run_onnx(runnable or src, feeds)
    source_size = src.stat().st_size
    model, record = _fix_inputs(model, fixed, feeds, expected)
    onnx.save(model, str(minimal))
    steps = [record]
    size = minimal.stat().st_size
    plan = [("upgrade-opset", graph.upgrade_opset), ("fold-ifs", graph.fold_constant_ifs),
            *[(f"simplify:{name}", _simplifier(fn)) for name, fn in simplify.SIMPLIFIERS.items()],
            ("fold-ifs", graph.fold_constant_ifs),
            ("if-conditions", graph.normalize_if_conditions),
            ("rnn-inputs", graph.rnn_default_inputs),
            ("constants", graph.constants_to_initializers),
            ("static-reshapes", graph.static_reshapes),
            ("node-names", graph.converter_safe_names),
            ("output-shapes", lambda m: graph.static_output_shapes(m, expected))]
    simplified = False
    for name, step in plan:
        if name.startswith("simplify:") and simplified:
            continue
        record, candidate, new_size = _try_step(name, step, model, feeds, expected, size,
                                                source_size)
        steps.append(record)
        if candidate is not None:
            model, size = candidate, new_size
            simplified = simplified or name.startswith("simplify:")
    onnx.save(model, str(dst))
    has_standard = False
    if any(n.domain not in ("", "ai.onnx") for n in model.graph.node):
        record, candidate, _ = _try_step("standard-ops", graph.standard_ops, model, feeds,
                                         expected, size, source_size, STANDARD_OPS)
        steps.append({**record, "note": "a copy for targets that run only standard ops"})
        if candidate is not None:
            onnx.save(candidate, str(standard))
            has_standard = True
    return {"stage": "prepare", "status": "ok", "steps": steps, "standard_ops": has_standard,
            "nodes_before": len(onnx.load(str(src), load_external_data=False).graph.node),
            "nodes_after": len(model.graph.node), "size_before": source_size,
            "size_after": dst.stat().st_size}


def _fix_inputs(model: onnx.ModelProto, fixed: dict[str, np.ndarray], feeds: list[dict],
                expected: dict) -> tuple[onnx.ModelProto, dict]:
    """The fixed inputs as constants, and the Ifs they decide folded: a branch the fixed
    value never takes may not even pass shape inference once the input shapes are static
    (runtimes check every branch when they load a model), so it goes with the fixing."""
    model, changes = graph.fix_inputs(model, fixed)
    if not changes:
        return model, {"step": "fix-inputs", "status": "not needed", "changes": []}
    model, folded = graph.fold_constant_ifs(model)
    record = {"step": "fix-inputs", "status": "ok", "changes": changes + folded}
    try:
        got = _run(model, feeds)
    except Exception as e:  # kept anyway (the user asked for it); the cells verify each bundle
        return model, {**record, "check": {"error": f"{type(e).__name__}: {first_line(e)}"}}
    return model, {**record, "check": worst_difference(expected, got)}


def _run(model: onnx.ModelProto, feeds: list[dict]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "candidate.onnx"
        onnx.save(model, str(path))
        names = {i.name for i in model.graph.input}
        return run_onnx(path, [{k: v for k, v in f.items() if k in names} for f in feeds])


def _try_step(name, step, model, feeds, expected, size, source_size, check: Check = EXACT):
    tool = _tool(name)
    record = {"step": name, **({"tool": tool} if tool else {})}
    try:
        candidate, changes = step(model)
        if not changes:
            return {**record, "status": "not needed"}, None, size
        onnx.checker.check_model(candidate)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "candidate.onnx"
            onnx.save(candidate, str(path))
            new_size = path.stat().st_size
            names = {i.name for i in candidate.graph.input}
            got = run_onnx(path, [{k: v for k, v in f.items() if k in names} for f in feeds])
    except Exception as e:  # a failing step keeps the model as it was; it is recorded
        return {**record, "status": "failed",
                "reason": f"{type(e).__name__}: {first_line(e)}"}, None, size
    diff = worst_difference(expected, got)
    record.update(changes=changes[:20], check=diff)
    if not diff["shape_ok"] or diff["rel_error"] > check.max_rel_error \
            or diff["cosine"] < check.min_cosine:
        return {**record, "status": "rejected",
                "reason": f"output differs (relative error {diff['rel_error']:.3g}, cosine "
                          f"{diff['cosine']:.6f})"}, None, size
    limit = max(source_size, size) * MAX_GROWTH + GROWTH_SLACK
    if new_size > limit and not check.may_grow:
        return {**record, "status": "rejected",
                "reason": f"would grow the model from {_mib(size)} to {_mib(new_size)} "
                          "(constant folding of quantized weights?); the source's weights are "
                          "kept as they are"}, None, size
    return {**record, "status": "ok", "size": new_size}, candidate, new_size


def _simplifier(simplifier):
    def step(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
        before = len(model.graph.node)
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        simplified = simplifier(copy)
        return simplified, [f"{before} → {len(simplified.graph.node)} nodes"]
    return step


def _tool(step: str) -> str | None:
    if not step.startswith("simplify:"):
        return None
    package = step.split(":", 1)[1].split("-")[0]
    try:
        return f"{package} {importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:
        return package


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"

