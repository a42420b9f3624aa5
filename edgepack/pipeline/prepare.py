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

from edgepack.artifact import ModelArtifact, sha256_file
from edgepack.child import run_task
from edgepack.data import Dataset, check_labels_fit, load_dataset, synthetic_dataset
from edgepack.device import core
from edgepack.errors import DataError, ModelError, ShapeError
from edgepack.importers import parse_model
from edgepack.importers.onnx import fixed_input_arrays, import_onnx
from edgepack.pipeline.importing import Imported, import_source, run_source, source_sha256
from edgepack.pipeline.options import BuildOptions
from edgepack.stages import graph
from edgepack.tasks import PrepareSpec, ReferenceSpec
from edgepack.verify import CLASSIFIER_NAMES, class_rows

CALIB_FRACTION = 0.25  # of --data held out for calibration when no --calib/--eval is given
MIN_SPLIT_SAMPLES = 8  # below this, calibrate and evaluate on the same samples (said so)
SPLIT_SEED = 0
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


Progress = Callable[[str], None]


def prepare(opts: BuildOptions, needs_calib: bool, work: Path, stage: Path,
            progress: Progress) -> Prepared:
    """Import, check shapes and data, run the reference, simplify. EdgepackError (exit 2) for
    anything wrong with the model or the data; the simplifier can only be skipped."""
    progress("importing the model")
    source = parse_model(opts.model, opts.weights, opts.trust_pickle)
    imported = None
    if source.format == "onnx":
        reference = import_onnx(source.path, stage / "models" / "reference.onnx",
                                opts.input_shapes)
    else:
        imported = import_source(source, opts.input_shapes,
                                 [opts.data, opts.eval, opts.calib], work, stage, opts.timeout)
        reference = import_onnx(imported.onnx, stage / "models" / "reference.onnx",
                                {s.name: s.shape for s in imported.inputs})
    _require_static(reference)
    fixed = fixed_input_arrays(list(reference.inputs), opts.fixed_inputs)
    evaluation, calib, data = resolve_data(opts, reference, fixed, needs_calib)
    data_dir = work / "data"
    data_dir.mkdir(parents=True)
    eval_file = data_dir / "eval.npz"
    evaluation.save(eval_file)
    calib_file = None
    if calib is not None:
        calib_file = data_dir / "calib.npz"
        calib.save(calib_file)
    progress("computing reference outputs")
    stages = [{"stage": "import", "status": "ok", "tool": f"onnx {_version('onnx')}",
               "sha256": reference.sha256}]
    notes = []
    if imported is None:
        outputs = run_reference(reference.path, eval_file, work, stage, opts.timeout)
    else:  # the source framework is the reference; the exported ONNX is checked against it
        outputs = run_source(imported, eval_file, work, stage, opts.timeout)
        try:
            onnx_outputs = run_reference(reference.path, eval_file, work, stage, opts.timeout)
        except ModelError as e:
            onnx_outputs = {"error": str(e)}
        stages[0] = import_check(imported, onnx_outputs, outputs, reference.sha256)
        notes = imported.notes + stages[0].get("notes", [])
    check_reference(outputs, evaluation)
    progress("preparing the graph")
    models, record = prepare_graph(reference, evaluation, fixed, work, stage, opts.timeout)
    stages.append(record)
    source = {"file": Path(source.display).name, "path": source.display,
              "sha256": sha256_file(source.path) if source.format == "onnx" else
              source_sha256(source), "format": source.format,
              "layout": imported.layout if imported else None,
              "inputs": [s.to_dict() for s in reference.inputs],
              "outputs": [s.to_dict() for s in reference.outputs],
              "metadata": _metadata(reference.path)}
    model = onnx.load(str(reference.path), load_external_data=False)
    quantized = (imported.quantized if imported else False) or any(
        n.op_type in QUANTIZED_OPS for n in model.graph.node)
    if quantized:
        notes.append("the source model is already int8-quantized: its fp32 and fp16 bundles "
                     "are held to the int8 accuracy budget, since runtimes round int8 "
                     "differently")
    return Prepared(source, reference, models, evaluation, calib, eval_file, calib_file,
                    outputs, stages, data, notes + shape_notes(reference, outputs),
                    graph.branch_inputs(model), imported, quantized)


QUANTIZED_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul",
                 "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}
IMPORT_TOLERANCE = 1e-3  # the exported ONNX against the source framework (relative error)


def import_check(imported: Imported, onnx_outputs: dict, source_outputs: dict,
                 sha256: str) -> dict:
    """The import stage's record: the exported ONNX model checked against the source
    framework's outputs (the reference every bundle is verified against)."""
    from edgepack.stages.simplify import worst_difference

    if "error" in onnx_outputs:
        check = {"shape_ok": False, "error": onnx_outputs["error"], "rel_error": float("inf")}
    else:
        check = worst_difference(source_outputs, onnx_outputs)
    ok = check["shape_ok"] and check["rel_error"] <= IMPORT_TOLERANCE
    record = {"stage": "import", "status": "ok" if ok else "differs",
              "tool": imported.record.get("exporter"), "format": imported.source.format,
              "sha256": sha256, "check": check, **imported.record}
    if not ok:
        detail = check.get("error") or f"relative error {check['rel_error']:.3g}"
        record["notes"] = [
            f"the exported ONNX model differs from the {imported.source.format} model "
            f"({detail}); every bundle is verified against the {imported.source.format} model "
            "itself, and strategies that read it directly do not depend on the export"]
    return record


def _metadata(path: Path) -> dict[str, str]:
    """The model's metadata_props (e.g. class labels), carried into every bundle's manifest,
    since not every runtime's file format keeps them."""
    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


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


def resolve_data(opts: BuildOptions, model: ModelArtifact, fixed: dict[str, np.ndarray],
                 needs_calib: bool) -> tuple[Dataset, Dataset | None, dict]:
    """Evaluation and calibration data, and a description of them for the report.

    With only ``--data`` and a cell that calibrates, the samples are split (seeded, recorded)
    so that accuracy is never measured on the calibration samples without saying so. Inputs
    fixed with ``--fix-input`` hold their value in every sample (data files need not have
    them).
    """
    free = [s for s in model.inputs if s.name not in fixed]

    def load(path: Path | None, role: str) -> Dataset | None:
        if not path:
            return None
        return load_dataset(path, free, role, ignore=tuple(fixed)).with_fixed(fixed)

    shared = load(opts.data, "--data")
    evaluation = load(opts.eval, "--eval")
    calib = load(opts.calib, "--calib")
    split, in_sample = None, False
    if needs_calib and shared is not None and evaluation is None and calib is None:
        if shared.samples >= MIN_SPLIT_SAMPLES:
            calib, evaluation, split = shared.split(CALIB_FRACTION, SPLIT_SEED)
        else:
            in_sample = True
    evaluation = evaluation or shared or synthetic_for(model, free, fixed, seed=0)
    calib = calib or shared
    if needs_calib and calib is None:
        if not opts.allow_synthetic_calibration:
            raise DataError(
                "static int8 needs calibration data: pass --calib FILE.npz or --data FILE.npz "
                "(random data gives meaningless scales; --allow-synthetic-calibration forces it)")
        calib = synthetic_for(model, free, fixed, seed=1)
    if needs_calib and calib is not None and not split and _same_samples(calib, evaluation):
        in_sample = True
    if not needs_calib:
        calib = None

    def describe(d: Dataset | None) -> dict | None:
        return None if d is None else {"kind": d.kind, "source": d.source, "samples": d.samples}

    return evaluation, calib, {"eval": describe(evaluation), "calib": describe(calib),
                               "split": split, "in_sample": in_sample}


def _same_samples(a: Dataset, b: Dataset) -> bool:
    if a.samples != b.samples or a.arrays.keys() != b.arrays.keys():
        return False
    return all(np.array_equal(a.arrays[k], b.arrays[k]) for k in a.arrays)


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


def check_reference(outputs: dict[str, list[np.ndarray]], evaluation: Dataset) -> None:
    """Non-finite reference outputs, and labels that fit no classifier output, are exit 2."""
    for name, values in outputs.items():
        bad = sum(int(np.count_nonzero(~np.isfinite(v))) for v in values if v.dtype.kind == "f")
        if bad:
            total = sum(v.size for v in values)
            raise ModelError(
                f"the reference (the model on ONNX Runtime) gives {bad} NaN or infinite value(s) "
                f"of {total} in output '{name}' on the evaluation inputs; the model is broken "
                "(e.g. a NaN weight) or the inputs are outside its range")
    if evaluation.labels is not None:
        _check_labels(outputs, evaluation)


def _check_labels(outputs: dict[str, list[np.ndarray]], evaluation: Dataset) -> None:
    labels = evaluation.labels
    candidates = [(name, rows) for name, values in outputs.items()
                  if (rows := class_rows(values)) is not None and len(rows) == len(labels)]
    if not candidates:
        shapes = ", ".join(f"{n} {list(v[0].shape)}" for n, v in outputs.items() if v)
        raise DataError(
            f"{evaluation.source}: {len(labels)} labels, but no output has {len(labels)} rows "
            f"of class scores over {evaluation.samples} samples (outputs: {shapes}); labels "
            "are one class index per row of a classifier's scores")
    if any(int(labels.max()) < rows.shape[1] for _, rows in candidates):
        return
    named = [c for c in candidates if any(w in c[0].lower() for w in CLASSIFIER_NAMES)]
    name, rows = (named or candidates)[0]
    check_labels_fit(labels, rows.shape[1], name, evaluation.source)


def synthetic_for(model: ModelArtifact, inputs: list, fixed: dict[str, np.ndarray],
                  seed: int) -> Dataset:
    """Synthetic data the model can run: integer inputs within what the graph indexes (an
    embedding's rows; 0/1 for masks), recurrent states at zeros. An integer input whose valid
    values the graph does not tell is refused (DataError naming --data and --fix-input)."""
    proto = onnx.load(str(model.path), load_external_data=False)
    ranges, zeros, said = {}, [], []
    for spec in inputs:
        kind = np.dtype(spec.dtype).kind
        if kind in "iu":
            found = graph.integer_input_range(proto, spec.name)
            if found is None:
                raise DataError(
                    f"input '{spec.name}' ({spec.dtype}{spec.shape_str()}) is an integer whose "
                    "valid values edgepack cannot tell from the graph, so it makes no synthetic "
                    f"data for it; pass --data FILE.npz with real inputs, or fix it with "
                    f"--fix-input {spec.name}=VALUE")
            ranges[spec.name] = found
            said.append(f"{spec.name} in {found[0]}..{found[1]}")
        elif kind == "f" and graph.is_state_input(proto, spec.name):
            zeros.append(spec.name)
            said.append(f"{spec.name} zeros (a recurrent state)")
    data = synthetic_dataset(inputs, seed=seed, ranges=ranges, zeros=zeros).with_fixed(fixed)
    if said:
        data = replace(data, source=f"{data.source[:-1]}; {', '.join(said)})")
    return data


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


def prepare_graph(reference: ModelArtifact, evaluation: Dataset, fixed: dict[str, np.ndarray],
                  work: Path, stage: Path, timeout: float) -> tuple[dict[str, Path], dict]:
    """Prepare the graph in a child process (see stages/preparation.py). A preparation that
    crashes only leaves the imported model (with its fixed inputs) in place, with the reason."""
    folder = stage / "models"
    paths = {name: folder / f"{name}.onnx" for name in MODELS}
    feeds = work / "data" / "prepare_feeds.npz"
    fixed_file = work / "data" / "fixed_inputs.npz"
    evaluation.head(PREPARE_FEEDS).save(feeds)
    np.savez(fixed_file, **fixed)
    spec = PrepareSpec(str(reference.path), {k: str(v) for k, v in paths.items()}, str(feeds),
                       str(fixed_file))
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
