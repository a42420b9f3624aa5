"""Bring a non-ONNX model in: describe it, fix its input shapes, export it to ONNX, and run
it in its own framework for the reference outputs every bundle is verified against. Each
framework call runs in a child process (see tasks.ImportSpec)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edgepack.artifact import TensorSpec, guess_layout
from edgepack.child import run_task
from edgepack.device import core
from edgepack.errors import ModelError, ShapeError
from edgepack.importers import get_importer
from edgepack.importers.base import Source, unique_names
from edgepack.tasks import ImportSpec


@dataclass(frozen=True)
class Imported:
    source: Source
    onnx: Path | None  # the exported model: the source's I/O names, static input shapes
    inputs: list[TensorSpec]
    outputs: list[str]
    layout: str | None
    record: dict  # how it was exported (and why an exporter fell back)
    notes: list[str] = field(default_factory=list)
    quantized: bool = False  # the source already computes in int8
    # why there is no ONNX model (the exporter failed): only the targets that read the
    # source format itself can build it
    export_error: str | None = None
    # the outputs as the source names them: two may be one tensor (``outputs`` names them
    # apart: y, y_1)
    source_outputs: list[str] = field(default_factory=list)


def _call(source: Source, action: str, work: Path, log: Path, timeout: float, **kw) -> dict:
    spec = ImportSpec(action, source.to_dict(), str(work / "import" / action),
                      timeout=timeout, **kw)
    res = run_task(spec, work / "tmp" / "import" / action, log, timeout)
    if not res.ok:
        reason = scrub(res.reason or "", work)
        raise ModelError(reason if res.user_error else
                         f"importing {source.display} failed: {reason}")
    return res.result


def scrub(text: str, work: Path) -> str:
    """``text`` without the build's temporary folder: a path inside it (gone when the build
    ends) is named by its file name alone."""
    return re.sub(re.escape(str(work)) + r"[^\s'\"),;]*",
                  lambda m: Path(m.group()).name or "the build folder", text)


def import_source(source: Source, input_shapes: dict, data_files: list[Path], work: Path,
                  stage: Path, timeout: float) -> Imported:
    """Describe and export ``source``; EdgepackError for what the user can fix."""
    importer = get_importer(source.format)
    missing = importer.missing()
    if missing:
        raise ModelError(missing)
    importer.check(source)
    log = stage / "logs" / "import.log"
    described = _call(source, "describe", work, log, timeout)
    inputs, notes = static_inputs(described["inputs"], input_shapes, data_files,
                                  described.get("layout"))
    dst = stage / "models" / "imported.onnx"
    dst.parent.mkdir(parents=True, exist_ok=True)
    imported = Imported(source, dst, inputs, unique_names(described["outputs"]),
                        described.get("layout"), {}, [*described.get("notes", []), *notes],
                        bool(described.get("quantized")),
                        source_outputs=list(described["outputs"]))
    try:
        record = _call(source, "export", work, log, timeout,
                       inputs=[s.to_dict() for s in inputs], outputs=imported.outputs,
                       dst=str(dst))
    except ModelError as e:  # the targets that read the source itself still build it
        return replace(imported, onnx=None, export_error=str(e))
    outputs = record.pop("outputs", imported.outputs)
    repair_duplicate_outputs(dst)
    rename_io(dst, [s.name for s in inputs], outputs)
    record = {k: v for k, v in record.items() if k != "peak_rss_bytes"}
    return replace(imported, outputs=outputs, record=record)


def run_source(imported: Imported, data: Path, work: Path, stage: Path,
               timeout: float) -> tuple[dict[str, list[np.ndarray]], list[str]]:
    """The source framework's outputs on every sample of ``data`` (the reference), and what
    the report should say about how it ran."""
    out = work / "data" / "source_outputs.npz"
    result = _call(imported.source, "run", work, stage / "logs" / "import.log", timeout,
                   inputs=[s.to_dict() for s in imported.inputs], outputs=imported.outputs,
                   data=str(data), dst=str(out))
    return core.unpack(core.load_npz(out), imported.outputs), list(result.get("notes", []))


def repair_duplicate_outputs(path: Path) -> None:
    """An exported model listing one value as two outputs (two outputs of the source that
    are one tensor) gets the second as an ``Identity`` of the first, under a name of its own
    (as ``unique_names`` names the source's outputs): ONNX requires distinct output names."""
    import onnx

    model = onnx.load(str(path))
    names = [o.name for o in model.graph.output]
    if len(set(names)) == len(names):
        return
    for out, unique in zip(model.graph.output, unique_names(names), strict=True):
        if unique != out.name:
            model.graph.node.append(onnx.helper.make_node("Identity", [out.name], [unique],
                                                          name=f"{unique}/copy"))
            out.name = unique
    onnx.save(model, str(path))


def static_inputs(described: list[dict], given: dict, data_files: list[Path],
                  layout: str | None) -> tuple[list[TensorSpec], list[str]]:
    """Input specs with static shapes: --input-shape first; a dynamic leading (batch) dim
    becomes 1 (noted); anything else dynamic or unknown is a ShapeError naming the flag."""
    hints = _data_hints(data_files)
    specs, notes = [], []
    for d in described:
        name, dtype, shape = d["name"], d["dtype"], d["shape"]
        if name in hints and shape is None:
            dtype = hints[name]
        if name in given:
            if shape is not None and len(shape) != len(given[name]):
                raise ShapeError(f"--input-shape {name} has {len(given[name])} dims, but input "
                                 f"'{name}' has rank {len(shape)} {list(shape)}")
            shape = list(given[name])
        elif shape is None:
            raise ShapeError(f"the model does not declare the shape of input '{name}': pass "
                             f"--input-shape {name}=D1,D2,... (e.g. 1,3,224,224)")
        else:
            shape = list(shape)
            if shape and (shape[0] is None or shape[0] < 0):
                shape[0] = 1
                notes.append(f"input '{name}': its dynamic batch dimension is built as 1")
            if any(s is None or s < 0 for s in shape):
                flag = ",".join("N" if s is None or s < 0 else str(s) for s in shape)
                raise ShapeError(f"input '{name}' has dynamic shape {shape}; fix it with "
                                 f"--input-shape {name}={flag} (N = the size to build for)")
        shape = tuple(int(s) for s in shape)
        specs.append(TensorSpec(name, dtype, shape, guess_layout(shape) if layout is None
                                else (layout if len(shape) == 4 else None)))
    return specs, notes


def _data_hints(files: list[Path]) -> dict[str, str]:
    """Input dtypes as the data files hold them (for frameworks that do not declare them)."""
    hints = {}
    for path in files:
        if path is not None and path.suffix == ".npz" and path.is_file():
            try:
                with np.load(path, allow_pickle=False) as z:
                    for key in z.files:
                        hints.setdefault(key, z[key].dtype.name)
            except (OSError, ValueError):
                pass
    return hints


def rename_io(path: Path, inputs: list[str], outputs: list[str]) -> None:
    """Give an exported model the source's input and output names (exporters add prefixes
    and ':0' suffixes): matched by name once normalised, else by position."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    real = [i for i in graph.input if i.name not in inits]
    mapping = {**_match([i.name for i in real], inputs),
               **_match([o.name for o in graph.output], outputs)}
    mapping = {old: new for old, new in mapping.items() if old != new}
    if not mapping:
        return
    for value in [*real, *graph.output]:
        value.name = mapping.get(value.name, value.name)
    todo = [graph]
    while todo:
        g = todo.pop()
        for node in g.node:
            node.input[:] = [mapping.get(x, x) for x in node.input]
            node.output[:] = [mapping.get(x, x) for x in node.output]
            for a in node.attribute:
                todo.extend([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs))
    for vi in graph.value_info:
        vi.name = mapping.get(vi.name, vi.name)
    onnx.save(model, str(path))


def _norm(name: str) -> str:
    return name.lower().removeprefix("serving_default_").split(":")[0].strip("/")


def _match(have: list[str], want: list[str]) -> dict[str, str]:
    """Exported names to the source's: by name once normalised, where that is unambiguous,
    else by position."""
    if len(have) != len(want):
        raise ModelError(f"the exported model has {len(have)} values where the source has "
                         f"{len(want)} ({', '.join(want)})")
    by_name = {_norm(w): w for w in want}
    unambiguous = len(by_name) == len(want) == len({_norm(h) for h in have})
    if unambiguous and all(_norm(h) in by_name for h in have):
        return {h: by_name[_norm(h)] for h in have}
    return dict(zip(have, want, strict=True))


def source_sha256(source: Source) -> str:
    """The digest of what the user gave: the file, every file of a folder, or an entry
    point's .py file and weights."""
    h = hashlib.sha256()
    paths = sorted(p for p in source.path.rglob("*") if p.is_file()) if source.path.is_dir() \
        else [source.path]
    if source.weights is not None:
        paths.append(source.weights)
    for p in paths:
        h.update(str(p.relative_to(source.path) if source.path.is_dir() else p.name).encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


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
