"""The samples a build evaluates and calibrates on: the user's data files, split when one
file must serve both, or synthetic data the model can run; and the checks of the reference
outputs on them (exit 2 for what the user must fix)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx

from edgepack.artifact import ModelArtifact
from edgepack.data import (
    Dataset,
    check_labels_fit,
    load_dataset,
    plan_reading,
    synthetic_dataset,
)
from edgepack.errors import DataError, ModelError
from edgepack.options import BuildOptions
from edgepack.stages import graph
from edgepack.verify import CLASSIFIER_NAMES, class_rows

CALIB_FRACTION = 0.25  # of --data held out for calibration when no --calib/--eval is given


MIN_SPLIT_SAMPLES = 8  # below this, calibrate and evaluate on the same samples (said so)


SPLIT_SEED = 0



def resolve_data(opts: BuildOptions, model: ModelArtifact, fixed: dict[str, np.ndarray],
                 needs_calib: bool) -> tuple[Dataset, Dataset | None, dict]:
    """Evaluation and calibration data, and a description of them for the report.

    With only ``--data`` and a cell that calibrates, the samples are split (seeded, recorded)
    so that accuracy is never measured on the calibration samples without saying so. Inputs
    fixed with ``--fix-input`` hold their value in every sample (data files need not have
    them).
    """
    free = [s for s in model.inputs if s.name not in fixed]
    paths = {role: Path(path) for role, path in (("--data", opts.data), ("--eval", opts.eval),
                                                 ("--calib", opts.calib)) if path}
    reading = plan_reading(paths, free, opts.preprocessing, opts.labels, opts.tokenizer,
                           model_metadata(model.path) if model.format == "onnx" else {})

    def load(path: Path | None, role: str) -> Dataset | None:
        if not path:
            return None
        return load_dataset(path, free, role, ignore=tuple(fixed),
                            reading=reading).with_fixed(fixed)

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
                               "split": split, "in_sample": in_sample,
                               "preprocessing": reading.record if reading else None,
                               "classes": reading.classes if reading else None}


def model_metadata(path: Path) -> dict[str, str]:
    """The model's metadata_props (e.g. class names), carried into every bundle's manifest,
    since not every runtime's file format keeps them."""
    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}



def _same_samples(a: Dataset, b: Dataset) -> bool:
    if a.samples != b.samples or a.arrays.keys() != b.arrays.keys():
        return False
    return all(np.array_equal(a.arrays[k], b.arrays[k]) for k in a.arrays)



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
    # without an ONNX graph (its export failed) only names tell masks and states
    proto = onnx.load(str(model.path), load_external_data=False) \
        if model.format == "onnx" else onnx.ModelProto()
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
