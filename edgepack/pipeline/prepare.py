"""Prepare what every cell shares: the imported model, its data, the reference outputs and
the prepared models. Everything the user gave is checked here (exit 2) before any cell runs.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx

from edgepack import preprocessing
from edgepack.artifact import ModelArtifact, TensorSpec, sha256_file
from edgepack.child import run_task
from edgepack.data import Dataset
from edgepack.device import core
from edgepack.errors import ModelError, ShapeError
from edgepack.importers import parse_model
from edgepack.importers.base import Source
from edgepack.importers.onnx import exported_problem, fixed_input_arrays, import_onnx
from edgepack.pipeline.importing import (
    Imported,
    import_check,
    import_source,
    run_source,
    source_sha256,
)
from edgepack.pipeline.options import BuildOptions
from edgepack.pipeline.samples import check_reference, model_metadata, resolve_data
from edgepack.stages import graph
from edgepack.tasks import PrepareSpec, ReferenceSpec

PREPARE_FEEDS = 4
MODELS = ("prepared", "standard", "minimal")  # the prepared files, in the order cells try them


@dataclass(frozen=True)
class Prepared:
    """What the cells of one build share. Paths live in the build's work folder."""

    source: dict  # the user's model file: name, path, sha256, format, inputs, outputs
    reference: ModelArtifact  # the imported model: the FP32 reference
    models: dict[str, Path]  # "prepared", "minimal" and maybe "standard" (see MODELS)
    evaluation: Dataset
    calib: Dataset | None
    eval_file: Path
    calib_file: Path | None
    reference_outputs: dict[str, list[np.ndarray]]  # per output, one array per eval sample
    stages: list[dict]
    data: dict  # the report's description of the data (kinds, sources, split, in-sample)
    notes: list[str]  # what the report should say about the model (e.g. declared shapes)
    branch_inputs: list[str]  # inputs that If conditions depend on (for hints)
    imported: Imported | None = None  # a non-ONNX source: its importer's record
    quantized: bool = False  # the source already computes in int8: fp32/fp16 cells of it
    #                          are held to the int8 budget (runtimes round int8 differently)

    @property
    def model(self) -> Path:
        return self.models["prepared"]

    @property
    def onnx_failure(self) -> str | None:
        """Why there is no ONNX model (its export failed): only the strategies that read the
        source format itself can build this model."""
        return self.imported.export_error if self.imported else None


Progress = Callable[[str], None]


def prepare(opts: BuildOptions, needs_calib: bool, work: Path, stage: Path,
            progress: Progress, source: Source | None = None) -> Prepared:
    """Import, check shapes and data, run the reference, simplify. EdgepackError (exit 2) for
    anything wrong with the model or the data; the simplifier can only be skipped.
    ``source`` is the parsed model argument (parsed here when not given)."""
    progress("importing the model")
    source = source or parse_model(opts.model, opts.weights, opts.trust_pickle)
    reference, imported = _import(opts, source, work, stage)
    if imported is not None and imported.export_error:
        return _prepare_source_only(opts, needs_calib, work, stage, progress, reference,
                                    imported)
    fixed = fixed_input_arrays(list(reference.inputs), opts.fix_inputs)
    evaluation, calib, data = resolve_data(opts, reference, fixed, needs_calib)
    eval_file, calib_file = _save_data(work / "data", evaluation, calib)
    progress("computing reference outputs")
    runnable = runnable_model(source, reference)
    outputs, stages, notes = _reference(opts, reference, runnable, imported, eval_file, work,
                                        stage)
    check_reference(outputs, evaluation)
    progress("preparing the graph")
    models, record = prepare_graph(reference, runnable, evaluation, fixed, work, stage,
                                   opts.timeout)
    stages.append(record)
    record = _source_record(source, imported, reference)
    model = onnx.load(str(reference.path), load_external_data=False)
    quantized = (imported.quantized if imported else False) or any(
        is_quantized_op(n) for n in model.graph.node)
    if quantized:
        notes.append("the source model is already int8-quantized: its fp32 and fp16 bundles "
                     "are held to the int8 accuracy budget, since runtimes round int8 "
                     "differently")
    if data["preprocessing"]:
        notes.insert(0, preprocessing.note(data["preprocessing"], data["classes"]))
    return Prepared(record, reference, models, evaluation, calib, eval_file, calib_file,
                    outputs, stages, data, notes + shape_notes(reference, outputs),
                    graph.branch_inputs(model), imported, quantized)


def _import(opts: BuildOptions, source: Source, work: Path, stage: Path
            ) -> tuple[ModelArtifact, Imported | None]:
    """The reference ONNX model (with static inputs), and the importer's record for a
    non-ONNX source."""
    imported = None
    if source.format == "onnx":
        reference = import_onnx(source.path, stage / "models" / "reference.onnx",
                                opts.input_shapes)
    else:
        imported = import_source(source, opts.input_shapes,
                                 [opts.data, opts.eval, opts.calib], work, stage, opts.timeout)
        problem = imported.onnx and exported_problem(imported.onnx)
        if problem:
            exporter = imported.record.get("exporter") or "the exporter"
            imported = replace(imported, onnx=None, export_error=(
                f"{exporter} wrote an ONNX model that is not valid: {problem}"))
        if imported.export_error:  # no ONNX model: the source itself, as far as it goes
            return ModelArtifact(source.path, source.format, tuple(imported.inputs), (),
                                 source_sha256(source), "import"), imported
        reference = import_onnx(imported.onnx, stage / "models" / "reference.onnx",
                                {s.name: s.shape for s in imported.inputs})
    _require_static(reference)
    return reference, imported


def _source_record(source: Source, imported: Imported | None, reference: ModelArtifact
                   ) -> dict:
    """The report's record of the user's model."""
    return {"file": Path(source.display).name, "path": source.display,
            "sha256": sha256_file(source.path) if source.format == "onnx" else
            source_sha256(source), "format": source.format,
            "layout": imported.layout if imported else None,
            "inputs": [s.to_dict() for s in reference.inputs],
            "outputs": [s.to_dict() for s in reference.outputs],
            "metadata": model_metadata(reference.path) if reference.format == "onnx" else {}}


def _prepare_source_only(opts: BuildOptions, needs_calib: bool, work: Path, stage: Path,
                         progress: Progress, reference: ModelArtifact, imported: Imported
                         ) -> Prepared:
    """What the cells share when the model could not be exported to ONNX: the data and the
    source framework's reference outputs. The strategies that read the source format itself
    (the tflite target's original .tflite, openvino's convert-source) build it, verified
    against the source framework; the others fail with the exporter's reason."""
    why = imported.export_error
    name = Path(imported.source.display).name
    if opts.fix_inputs:
        raise ModelError(f"--fix-input freezes inputs of the ONNX model, and exporting {name} "
                         f"to ONNX failed: {why}")
    evaluation, calib, data = resolve_data(opts, reference, {}, needs_calib)
    eval_file, calib_file = _save_data(work / "data", evaluation, calib)
    progress("computing reference outputs")
    outputs, run_notes = run_source(imported, eval_file, work, stage, opts.timeout)
    check_reference(outputs, evaluation)
    reference = replace(reference, outputs=tuple(
        TensorSpec(n, v[0].dtype.name, tuple(v[0].shape)) for n, v in outputs.items() if v))
    fmt = imported.source.format
    note = (f"exporting {name} to ONNX failed ({why}); only the strategies that read the "
            f"{fmt} file itself build it, verified against the {fmt} model; the others fail "
            "with this reason")
    stages = [{"stage": "import", "status": "failed", "format": fmt, "reason": why,
               "notes": [note]},
              {"stage": "prepare", "status": "skipped", "reason": "no ONNX model to prepare"}]
    return Prepared(_source_record(imported.source, imported, reference), reference, {},
                    evaluation, calib, eval_file, calib_file, outputs, stages, data,
                    [*imported.notes, *run_notes, note], [], imported, imported.quantized)


def _save_data(folder: Path, evaluation: Dataset, calib: Dataset | None
               ) -> tuple[Path, Path | None]:
    folder.mkdir(parents=True)
    evaluation.save(folder / "eval.npz")
    if calib is not None:
        calib.save(folder / "calib.npz")
    return folder / "eval.npz", (folder / "calib.npz" if calib is not None else None)


def runnable_model(source: Source, reference: ModelArtifact) -> Path:
    """The ONNX model the reference outputs come from: an ONNX source as the user gave it.

    The reference model (``reference.onnx``) has the static input shapes the build uses;
    with them a runtime's shape inference also checks branches that a fixed input never
    takes, and can refuse a model that runs fine (an LSTM fed rank 4 in the 8 kHz branch of
    a model only ever run at 16 kHz). The user's model, fed the same inputs, computes the
    same outputs without that check."""
    return source.path if source.format == "onnx" else reference.path


def _reference(opts: BuildOptions, reference: ModelArtifact, runnable: Path,
               imported: Imported | None, eval_file: Path, work: Path, stage: Path
               ) -> tuple[dict, list[dict], list[str]]:
    """The reference outputs (the source framework's for a non-ONNX source, with the
    exported ONNX checked against them), the import stage's record, and notes."""
    stages = [{"stage": "import", "status": "ok", "tool": f"onnx {_version('onnx')}",
               "sha256": reference.sha256}]
    if imported is None:
        return run_reference(runnable, eval_file, work, stage, opts.timeout), stages, []
    outputs, run_notes = run_source(imported, eval_file, work, stage, opts.timeout)
    try:
        onnx_outputs = run_reference(reference.path, eval_file, work, stage, opts.timeout)
    except ModelError as e:
        onnx_outputs = {"error": str(e)}
    stages[0] = import_check(imported, onnx_outputs, outputs, reference.sha256)
    return outputs, stages, imported.notes + run_notes + stages[0].get("notes", [])


QUANTIZED_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul",
                 "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear",
                 # com.microsoft: ONNX Runtime's quantized ops
                 "DynamicQuantizeLSTM", "DynamicQuantizeMatMul", "MatMulIntegerToFloat",
                 "QAttention", "QGemm", "MatMulNBits"}


def is_quantized_op(node: onnx.NodeProto) -> bool:
    """A node that computes in integers (the model is already quantized)."""
    return node.op_type in QUANTIZED_OPS or node.op_type.startswith("QLinear")


def _version(package: str) -> str:
    import importlib.metadata

    return importlib.metadata.version(package)


def _require_static(model: ModelArtifact) -> None:
    for spec in model.inputs:
        if not spec.is_static:
            flag = ",".join(str(d) if isinstance(d, int) and d > 0 else "N" for d in spec.shape)
            raise ShapeError(
                f"input '{spec.name}' has dynamic shape {spec.shape_str()}; fix it with "
                f"--input-shape {spec.name}={flag} (N = the size to build for)")


def run_reference(model: Path, eval_file: Path, work: Path, stage: Path,
                  timeout: float) -> dict[str, list[np.ndarray]]:
    """The FP32 reference outputs (the imported model on ONNX Runtime), in a child process:
    a model the runtime cannot run is the user's to fix (exit 2), with the runtime's message."""
    out = work / "data" / "reference_outputs.npz"
    res = run_task(ReferenceSpec(str(model), str(eval_file), str(out)), work / "tmp" / "ref",
                   stage / "logs" / "reference.log", timeout)
    if not res.ok:
        raise ModelError(f"the reference run failed: {res.reason}" if not res.user_error
                         else res.reason)
    return core.unpack(core.load_npz(out), res.result["outputs"])


def shape_notes(reference: ModelArtifact, outputs: dict[str, list[np.ndarray]]) -> list[str]:
    """Outputs whose declared static shape differs from what the model really produces."""
    notes = []
    for spec in reference.outputs:
        values = outputs.get(spec.name) or []
        if not values or not spec.is_static:
            continue
        actual = tuple(values[0].shape)
        if actual != tuple(spec.shape):
            notes.append(f"output '{spec.name}' is declared {spec.shape_str()} but the model "
                         f"produces {list(actual)}; edgepack uses what it produces")
    return notes


def prepare_graph(reference: ModelArtifact, runnable: Path, evaluation: Dataset,
                  fixed: dict[str, np.ndarray], work: Path, stage: Path, timeout: float
                  ) -> tuple[dict[str, Path], dict]:
    """Prepare the graph in a child process (see stages/preparation.py). A preparation that
    crashes only leaves the imported model (with its fixed inputs) in place, with the reason."""
    folder = stage / "models"
    paths = {name: folder / f"{name}.onnx" for name in MODELS}
    feeds = work / "data" / "prepare_feeds.npz"
    fixed_file = work / "data" / "fixed_inputs.npz"
    evaluation.head(PREPARE_FEEDS).save(feeds)
    np.savez(fixed_file, **fixed)
    spec = PrepareSpec(str(reference.path), {k: str(v) for k, v in paths.items()}, str(feeds),
                       str(fixed_file), str(runnable))
    res = run_task(spec, work / "tmp" / "prepare", stage / "logs" / "prepare.log", timeout)
    record = {k: v for k, v in res.result.items() if k != "peak_rss_bytes"}
    if not res.ok or not paths["minimal"].is_file():
        if fixed:
            raise ModelError(f"fixing inputs {', '.join(fixed)} failed: {res.reason}")
        shutil.copyfile(reference.path, paths["minimal"])
        record = {"stage": "prepare", "status": "kept-original",
                  "reason": res.reason or "the preparation wrote no model"}
    if not paths["prepared"].is_file():
        shutil.copyfile(paths["minimal"], paths["prepared"])
    record["seconds"] = round(res.seconds, 3)
    return {k: v for k, v in paths.items() if v.is_file()}, record
