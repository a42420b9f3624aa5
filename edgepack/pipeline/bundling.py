"""Where a cell's files go, and the files every bundle gets besides the lowered model: the
manifest, golden data, runner, backend, pinned requirements (and wheels with
``--vendor-wheels``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgepack.artifact import sha256_file
from edgepack.bundle import write_bundle
from edgepack.device import core
from edgepack.profiles import AccuracyBudget
from edgepack.report.model import Cell
from edgepack.verify import output_kinds, tolerance

GOLDEN_SAMPLES = 8  # golden samples shipped in each bundle for its selftest ...
GOLDEN_BYTES = 1 << 20  # ... as long as their inputs fit in this (at least one sample)


@dataclass(frozen=True)
class CellPaths:
    """One cell's places: its bundle (relative to the model folder and in the stage), its
    log, and a scratch folder for its child processes."""

    rel: Path
    bundle: Path
    log: Path
    scratch: Path

    @classmethod
    def of(cls, stage: Path, work: Path, cell: Cell) -> CellPaths:
        rel = Path(cell.profile) / cell.name
        return cls(rel, stage / rel, stage / "logs" / f"{cell.profile}-{cell.name}.log",
                   work / "tmp" / cell.profile / cell.name)


def write_bundle_files(ctx, p, model: Path, bundle: Path, lowered, budget: AccuracyBudget,
                       wheels: Path | None = None) -> None:
    """Everything but the lowered model: manifest, golden I/O, run.py, backend, pins."""
    cell, profile, target, prep = p.cell, p.profile, p.target, ctx.prepared
    golden = prep.evaluation.only(t["name"] for t in lowered.inputs)
    per_sample = max(1, sum(v[0].nbytes for v in golden.arrays.values()))
    golden = golden.head(max(1, min(GOLDEN_SAMPLES, GOLDEN_BYTES // per_sample)))
    n = golden.samples
    version = target.runtime_version()
    manifest = {
        "source": {"file": prep.source["file"], "sha256": prep.source["sha256"],
                   "prepared_sha256": sha256_file(model)},
        "target": cell.target, "precision": cell.precision, "variant": cell.variant,
        "profile": {k: getattr(profile, k) for k in
                    ("name", "description", "arch", "cpu", "os", "python", "glibc")},
        "runtime": {"name": target.runtime, "package": target.packages[0],
                    "verified_version": version, "requires": version_range(version),
                    "options": lowered.runtime_options},
        "model_file": lowered.model_file,
        "threads": ctx.opts.threads or profile.threads,
        "inputs": lowered.inputs, "outputs": lowered.outputs,
        "preprocessing": _preprocessing(prep.data, lowered.inputs),
        "metadata": prep.source.get("metadata", {}),
        "selftest": {**tolerance(budget, output_kinds(prep.reference_outputs,
                                                      profile.output_kinds)),
                     "golden_samples": n},
        "notes": lowered.notes,
    }
    if wheels is not None:
        from edgepack.wheels import copy_into

        manifest["wheels"] = copy_into(wheels, bundle)
    header = (f"# {cell.target} bundle for {profile.name}: {profile.arch}, CPython "
              f"{profile.python}, glibc {profile.glibc} ({profile.os}).\n"
              f"# Pinned to the versions edgepack verified this bundle with.\n")
    golden_out = core.pack({k: v[:n] for k, v in prep.reference_outputs.items()})
    write_bundle(bundle, manifest, golden.arrays, golden_out, target.backend_file(),
                 target.requirements(profile), header)


def _preprocessing(data: dict, inputs: list[dict]) -> dict | None:
    """The preprocessing the bundle's data was read with (``run.py infer`` applies it to an
    image or WAV file), when the input it feeds is still the bundle's."""
    record = data.get("preprocessing")
    names = {t["name"] for t in inputs}
    if not record or (record.get("input") or record["inputs"]["ids"]) not in names:
        return None
    return record


def version_range(version: str) -> str:
    major = version.split(".")[0]
    return f">={version},<{int(major) + 1}" if major.isdigit() else f"=={version}"
