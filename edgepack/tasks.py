"""The work that runs in child processes (see :mod:`edgepack.child`): typed specs and bodies.

The parent builds a spec; the child gets it back as the same dataclass and returns a
JSON-able dict. Heavy imports happen inside the bodies, only in the child.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from edgepack.device import core


@dataclass(frozen=True)
class ReferenceSpec:
    """Run the reference ONNX model on ONNX Runtime over a dataset; save its outputs."""

    task: ClassVar[str] = "reference"
    model: str
    data: str  # an exchange .npz (Dataset.save)
    out: str  # the outputs, packed (device.core.pack)


@dataclass(frozen=True)
class PrepareSpec:
    """Prepare the imported model (stages/preparation.py): fixed inputs, rewrites, simplify."""

    task: ClassVar[str] = "prepare"
    src: str
    dst: dict  # "prepared", "minimal", "standard" -> path
    feeds: str  # an exchange .npz of a few samples (every input of the imported model)
    fixed: str  # an .npz of the fixed inputs' values
    runnable: str | None = None  # the model as the user gave it: the outputs to check against


@dataclass(frozen=True)
class LowerSpec:
    task: ClassVar[str] = "lower"
    target: str
    model: str
    precision: str
    profile: str  # the profile's source file
    out_dir: str
    calib: str | None = None
    calib_kind: str | None = None
    calib_source: str | None = None
    context: dict = field(default_factory=dict)  # a LowerContext (with its Strategy) as a dict


@dataclass(frozen=True)
class EvaluateSpec:
    """Run a written bundle over the evaluation data with its own backend (run.py's code)."""

    task: ClassVar[str] = "evaluate"
    bundle: str
    data: str
    out: str
    threads: int


@dataclass(frozen=True)
class ImportSpec:
    """One importer action (describe, export, run) on a source model, in a child process."""

    task: ClassVar[str] = "import_model"
    action: str  # "describe", "export" or "run"
    source: dict  # importers.base.Source as a dict
    workdir: str
    inputs: list = field(default_factory=list)  # TensorSpec dicts (static)
    outputs: list = field(default_factory=list)
    dst: str | None = None  # export: the ONNX file; run: the outputs .npz
    data: str | None = None  # run: the exchange .npz of samples
    timeout: float = 900.0


@dataclass(frozen=True)
class BenchSpec:
    task: ClassVar[str] = "bench"
    bundle: str
    threads: int
    warmup: int
    runs: int | None = None
    min_time: float | None = None


def reference(spec: ReferenceSpec) -> dict:
    from edgepack.data import read_dataset_file
    from edgepack.errors import ModelError
    from edgepack.stages.simplify import run_onnx

    data = read_dataset_file(Path(spec.data))
    try:
        outputs = run_onnx(Path(spec.model), list(data.feeds()))
    except Exception as e:  # the runtime's own message is what the user needs
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:400]
        raise ModelError(f"ONNX Runtime cannot run the model on these inputs: {first}; check "
                         "the input shapes (--input-shape), the data (--data) and inputs that "
                         "need a fixed value (--fix-input NAME=VALUE)") from None
    np.savez(spec.out, **core.pack(outputs))
    return {"outputs": list(outputs)}


def prepare(spec: PrepareSpec) -> dict:
    from edgepack.data import read_dataset_file
    from edgepack.stages.preparation import prepare_model

    data = read_dataset_file(Path(spec.feeds))
    dst = {k: Path(v) for k, v in spec.dst.items()}
    return prepare_model(Path(spec.src), dst["prepared"], dst["minimal"], dst["standard"],
                         core.load_npz(Path(spec.fixed)), list(data.feeds()),
                         Path(spec.runnable) if spec.runnable else None)


def lower(spec: LowerSpec) -> dict:
    from dataclasses import asdict

    from edgepack.data import read_dataset_file
    from edgepack.importers.onnx import io_specs
    from edgepack.profiles import load_profile
    from edgepack.targets import get_target
    from edgepack.targets.base import LowerContext

    calib = None
    if spec.calib:
        calib = read_dataset_file(Path(spec.calib), spec.calib_kind, spec.calib_source)
        if spec.model.endswith(".onnx"):  # (else the source model itself, with all its inputs)
            # only the model's own inputs (fixed inputs are constants inside it)
            calib = calib.only(t["name"] for t in io_specs(Path(spec.model))[0])
    target = get_target(spec.target)
    context = LowerContext.from_dict(spec.context, target.strategy_type)
    model, notes = _rewritten(Path(spec.model), context.strategy.rewrites,
                              context.strategy.forms, Path(spec.out_dir).parent)
    lowered = target.lower(model, spec.precision, load_profile(spec.profile), calib,
                           Path(spec.out_dir), context)
    lowered.notes[:0] = notes
    return asdict(lowered)


def _rewritten(model: Path, rewrites: tuple[str, ...], forms: tuple[str, ...],
               scratch: Path) -> tuple[Path, list[str]]:
    """The model after a strategy's graph rewrites, then its converter's forms wherever they
    change it (a copy beside the bundle folder)."""
    if not rewrites and not forms:
        return model, []
    import onnx

    from edgepack.stages.rewrites import apply_all, apply_where_they_apply

    proto, notes = apply_all(onnx.load(str(model)), rewrites)
    proto, more = apply_where_they_apply(proto, forms)
    notes += more
    if not rewrites and not more:
        return model, []
    out = scratch / f".{model.stem}-rewritten.onnx"
    onnx.save(proto, str(out))
    return out, notes


def evaluate(spec: EvaluateSpec) -> dict:
    bundle = Path(spec.bundle)
    manifest = core.load_manifest(bundle)
    arrays = core.load_npz(Path(spec.data))
    arrays.pop("labels", None)
    with core.open_model(bundle, manifest, spec.threads) as model:
        outputs = core.run_samples(model, arrays)
        info = model.info
    np.savez(spec.out, **core.pack(outputs))
    return {"runtime": info}


def import_model(spec: ImportSpec) -> dict:
    from edgepack.artifact import TensorSpec
    from edgepack.importers import get_importer
    from edgepack.importers.base import Source

    source = Source.from_dict(spec.source)
    importer = get_importer(source.format)
    workdir = Path(spec.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    inputs = [TensorSpec.from_dict(d) for d in spec.inputs]
    if spec.action == "describe":
        io = importer.describe(source, workdir, spec.timeout)
        return {"inputs": [{"name": s.name, "dtype": s.dtype,
                            "shape": None if s.shape is None else list(s.shape)}
                           for s in io.inputs],
                "outputs": io.outputs, "layout": io.layout, "notes": io.notes,
                "quantized": io.quantized}
    if spec.action == "export":
        return importer.export(source, inputs, spec.outputs, Path(spec.dst), workdir,
                               spec.timeout)
    return importer.run(source, inputs, spec.outputs, Path(spec.data), Path(spec.dst),
                        workdir, spec.timeout)


def bench(spec: BenchSpec) -> dict:
    """Time the bundle on its golden input in this fresh process (only its runtime loaded)."""
    return core.bench_bundle(Path(spec.bundle), spec.runs, spec.min_time, spec.warmup,
                             spec.threads)


TASKS = {spec.task: (spec, body) for spec, body in (
    (ReferenceSpec, reference), (PrepareSpec, prepare), (LowerSpec, lower),
    (EvaluateSpec, evaluate), (BenchSpec, bench), (ImportSpec, import_model))}
