"""Plan the (profile × target × precision) matrix for one model and build every cell.

Everything the user gave is checked before anything is written. The build happens in a
temporary directory beside the output and is moved into place only when complete.
Lowering, evaluation and benchmarking of each cell run in child processes with timeouts.
"""

from __future__ import annotations

import importlib.metadata
import platform
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from edgepack import __version__
from edgepack.artifact import ModelArtifact, sha256_file
from edgepack.bundle import check_bundle, write_archive, write_bundle
from edgepack.child import run_child
from edgepack.data import Dataset, load_dataset, synthetic_dataset
from edgepack.errors import DataError, ShapeError, TargetError
from edgepack.importers import detect_format
from edgepack.importers.onnx import import_onnx
from edgepack.profiles import PRECISIONS, AccuracyBudget, DeviceProfile, load_profile
from edgepack.report.model import Cell, Report, host_info
from edgepack.stages.quantize import CALIBRATION_METHODS
from edgepack.targets import TARGETS, get_target
from edgepack.targets.base import Lowered, Target
from edgepack.verify import accuracy_gates, compare_outputs

GOLDEN_FEEDS = 8  # golden samples shipped in each bundle for its selftest


@dataclass(frozen=True)
class BuildOptions:
    """Everything ``edgepack build`` takes. ``None`` means: the profile's default."""

    model: Path
    profiles: tuple[str, ...] = ()
    targets: tuple[str, ...] | None = None
    precisions: tuple[str, ...] | None = None
    data: Path | None = None
    calib: Path | None = None
    eval: Path | None = None
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    output: Path = Path("dist")
    runs: int | None = None
    min_time: float | None = None
    warmup: int = 10
    threads: int | None = None
    max_accuracy_drop: float | None = None
    min_cosine: float | None = None
    calibration_method: str = "minmax"
    allow_synthetic_calibration: bool = False
    target_options: dict = field(default_factory=dict)  # e.g. {"int8_io": True} for tflite
    strategy: str | None = None  # only try lowering strategies whose name contains this
    timeout: float = 900.0


@dataclass
class PlannedCell:
    cell: Cell
    profile: DeviceProfile
    target: Target | None


# progress(message, cell or None, cells done, cells to build)
Progress = Callable[[str, Cell | None, int, int], None]


def default_profile() -> str:
    return "generic-arm64" if platform.machine() in ("aarch64", "arm64") else "x86-64"


def plan(opts: BuildOptions) -> list[PlannedCell]:
    """The build matrix; raises EdgepackError for any unknown or impossible request."""
    profiles = [load_profile(p) for p in (opts.profiles or (default_profile(),))]
    for name in opts.precisions or ():
        if name not in PRECISIONS:
            raise TargetError(f"unknown precision '{name}'; known: {', '.join(PRECISIONS)}")
    explicit = [get_target(name) for name in opts.targets or ()]
    for target in explicit:
        target.require()
        missing = target.missing_toolchain()
        if missing:
            raise TargetError(missing)
    if opts.calibration_method not in CALIBRATION_METHODS:
        raise TargetError(f"unknown calibration method '{opts.calibration_method}'; known: "
                          f"{', '.join(CALIBRATION_METHODS)}")
    cells: list[PlannedCell] = []
    for profile in profiles:
        targets = explicit or [get_target(n) for n in profile.runtimes if n in TARGETS]
        for target in targets:
            why_not = target.check_profile(profile)
            if why_not and explicit:
                raise TargetError(f"cannot build '{target.name}' for '{profile.name}': {why_not}")
            for precision, variant in _precisions(opts, profile, target):
                cell = Cell(profile.name, target.name, precision, variant)
                if why_not:
                    cell.status, cell.reason = "skipped", why_not
                elif not target.available():
                    cell.status = "skipped"
                    cell.reason = (f"{target.package} is not installed: "
                                   f"pip install 'edgepack[{target.extra}]'")
                elif target.missing_toolchain():
                    cell.status, cell.reason = "skipped", target.missing_toolchain()
                elif precision not in target.precisions:
                    cell.status = "skipped"
                    cell.reason = f"the {target.name} target has no {precision} lowering"
                cells.append(PlannedCell(cell, profile, target))
    for p in cells:
        if p.cell.status == "pending":
            _strategies(opts, p)  # an unknown --strategy is a usage error, before any work
    return cells


def _precisions(opts: BuildOptions, profile: DeviceProfile, target: Target):
    for precision in opts.precisions or profile.default_precisions:
        variants = target.variants(precision, profile) if target.available() else [None]
        for variant in variants:
            yield precision, variant


def _strategies(opts: BuildOptions, p: PlannedCell) -> list[tuple[str, str | None]]:
    found = p.target.strategies(p.cell.precision, p.profile)
    if opts.strategy is None:
        return found
    chosen = [s for s in found if opts.strategy in s[0]]
    if not chosen:
        raise TargetError(f"--strategy '{opts.strategy}' matches none of the {p.target.name} "
                          f"target's strategies: {', '.join(s for s, _ in found)}")
    return chosen


def _resolve_data(opts: BuildOptions, model: ModelArtifact,
                  needs_calib: bool) -> tuple[Dataset, Dataset | None]:
    def load(path: Path | None, role: str) -> Dataset | None:
        return load_dataset(path, model.inputs, role) if path else None

    shared = load(opts.data, "--data")
    evaluation = load(opts.eval, "--eval") or shared or synthetic_dataset(model.inputs)
    calib = load(opts.calib, "--calib") or shared
    if needs_calib and calib is None:
        if not opts.allow_synthetic_calibration:
            raise DataError(
                "static int8 needs calibration data: pass --calib FILE.npz or --data FILE.npz "
                "(random data gives meaningless scales; --allow-synthetic-calibration forces it)"
            )
        calib = synthetic_dataset(model.inputs, seed=1)
    return evaluation, calib


def _budget(opts: BuildOptions, profile: DeviceProfile, cell: Cell) -> AccuracyBudget:
    # a variant run at the device's default (16-bit) inference precision gets the fp16 budget
    budget = profile.budget("fp16" if cell.variant else cell.precision)
    if opts.max_accuracy_drop is not None:
        budget = replace(budget, max_top1_drop=opts.max_accuracy_drop)
    if opts.min_cosine is not None:
        budget = replace(budget, min_cosine=opts.min_cosine)
    return budget


def tool_versions() -> dict[str, str]:
    tools = {}
    for name in ("numpy", "onnx", "onnxruntime", "onnxsim", "onnxslim", "openvino", "nncf",
                 "ai-edge-litert"):
        try:
            tools[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    from edgepack.toolchains import TOOLCHAINS

    for chains in TOOLCHAINS.values():
        for chain in chains:
            if chain.installed():
                tools[f"toolchain {chain.name}"] = ", ".join(
                    f"{p} {chain.version(p)}" for p in ("onnx2tf", "tensorflow", "onnx")
                    if chain.version(p))
    return tools


def run_reference(model: Path, data: Dataset) -> dict[str, np.ndarray]:
    """The FP32 reference: the imported ONNX model on ONNX Runtime, outputs stacked."""
    from edgepack.stages.simplify import run_onnx

    results = run_onnx(model, list(data.feeds()))
    return {name: np.concatenate([r[name] for r in results]) for name in results[0]}


class Build:
    """One build: holds the work directory and the report while cells run."""

    def __init__(self, opts: BuildOptions, progress: Progress | None = None) -> None:
        self.opts = opts
        self.progress = progress or (lambda msg, cell, done, total: None)

    def run(self) -> Report:
        opts = self.opts
        detect_format(opts.model)
        cells = plan(opts)
        out_root = opts.output.resolve()
        out_root.parent.mkdir(parents=True, exist_ok=True)
        self.name = opts.model.stem
        with tempfile.TemporaryDirectory(prefix=".edgepack-build-", dir=out_root.parent) as tmp:
            self.work = Path(tmp)
            self.stage = self.work / self.name
            report = self._build(cells)
            self._move_into_place(out_root)
        return report

    def _build(self, planned: list[PlannedCell]) -> Report:
        opts = self.opts
        self.progress("importing the model", None, 0, 0)
        reference = import_onnx(opts.model, self.stage / "models" / "reference.onnx",
                                opts.input_shapes)
        for spec in reference.inputs:
            if not spec.is_static:
                flag = ",".join(str(d) if isinstance(d, int) and d > 0 else "N"
                                for d in spec.shape)
                raise ShapeError(
                    f"input '{spec.name}' has dynamic shape {spec.shape_str()}; fix it with "
                    f"--input-shape {spec.name}={flag} (N = the size to build for)")
        runnable = [p for p in planned if p.cell.status == "pending"]
        needs_calib = any(p.cell.precision == "int8" for p in runnable)
        evaluation, calib = _resolve_data(opts, reference, needs_calib)
        # every input is valid from here on: the rest can only fail cells, not the build
        self.evaluation, self.calib = evaluation, calib
        self.report = self._new_report(reference, evaluation, calib)
        self.report.cells = [p.cell for p in planned]
        data_dir = self.work / "data"
        data_dir.mkdir()
        evaluation.save(data_dir / "eval.npz")
        if calib is not None:
            calib.save(data_dir / "calib.npz")
        self.progress("computing reference outputs", None, 0, len(runnable))
        self.reference_outputs = run_reference(reference.path, evaluation)
        self.reference = reference
        self.simplified = self._simplify(reference, evaluation)
        for done, p in enumerate(runnable):
            self.progress(f"building {p.cell.key}", p.cell, done, len(runnable))
            self._build_cell(p)
            self.progress(f"{p.cell.key}: {p.cell.status}", p.cell, done + 1, len(runnable))
        self._write_reports()
        return self.report

    def _new_report(self, model: ModelArtifact, evaluation: Dataset,
                    calib: Dataset | None) -> Report:
        opts = self.opts
        describe = lambda d: None if d is None else {  # noqa: E731
            "kind": d.kind, "source": d.source, "samples": d.samples}
        tools = tool_versions()
        return Report(
            edgepack_version=__version__,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            source={"file": opts.model.name, "path": str(opts.model),
                    "sha256": sha256_file(opts.model), "format": "onnx",
                    "inputs": [s.to_dict() for s in model.inputs],
                    "outputs": [s.to_dict() for s in model.outputs]},
            host=host_info(), tools=tools,
            settings={"runs": opts.runs, "min_time": opts.min_time, "warmup": opts.warmup,
                      "threads": opts.threads, "calibration_method": opts.calibration_method,
                      "input_shapes": {k: list(v) for k, v in opts.input_shapes.items()}},
            data={"eval": describe(evaluation), "calib": describe(calib)},
            stages=[{"stage": "import", "status": "ok", "tool": f"onnx {tools['onnx']}",
                     "sha256": model.sha256}],
        )

    def _simplify(self, reference: ModelArtifact, evaluation: Dataset) -> Path:
        self.progress("simplifying", None, 0, 0)
        dst = self.stage / "models" / "simplified.onnx"
        feeds = self.work / "data" / "simplify_feeds.npz"
        evaluation.head(4).save(feeds)
        res = run_child("simplify", {"src": reference.path, "dst": dst, "feeds": feeds,
                                     "batch": evaluation.batch},
                        self.work / "tmp" / "simplify", self.stage / "logs" / "simplify.log",
                        self.opts.timeout)
        record = {k: v for k, v in res.result.items() if k != "peak_rss_bytes"}
        if not res.ok:
            shutil.copyfile(reference.path, dst)
            record = {"stage": "simplify", "status": "kept-original", "reason": res.reason}
        record["seconds"] = round(res.seconds, 3)
        self.report.stages.append(record)
        return dst

    def _build_cell(self, p: PlannedCell) -> None:
        """Try the target's strategies in order until one yields a bundle that verifies."""
        cell, opts = p.cell, self.opts
        rel = Path(cell.profile) / cell.name
        bundle = self.stage / rel
        tmp = self.work / "tmp" / str(rel)
        log = self.stage / "logs" / f"{cell.profile}-{cell.name}.log"
        cell.log = str(Path("logs") / log.name)
        threads = opts.threads or p.profile.threads
        budget = _budget(opts, p.profile, cell)
        ok = False
        for strategy, unavailable in _strategies(opts, p):
            if unavailable:
                cell.attempts.append({"strategy": strategy, "outcome": f"skipped: {unavailable}"})
                continue
            shutil.rmtree(bundle, ignore_errors=True)
            bundle.mkdir(parents=True)
            cell.status, cell.reason = "pending", None
            attempt = {"strategy": strategy}
            cell.attempts.append(attempt)
            ok = self._lower(p, bundle, tmp, log, strategy, attempt) and self._verify(
                p, bundle, tmp, log, threads, budget, attempt)
            attempt["outcome"] = "accepted" if ok else f"rejected: {cell.reason}"
            if ok:
                break
        if ok:
            self._bench(p, bundle, tmp, log, threads)
        if not ok and cell.status != "failed":
            cell.fail("no lowering strategy is available: " + "; ".join(
                a["outcome"] for a in cell.attempts))
        if len(cell.attempts) > 1 and not ok:
            cell.reason = f"all {len(cell.attempts)} strategies rejected; last: {cell.reason}"
        if cell.status == "failed":
            shutil.rmtree(bundle, ignore_errors=True)
            return
        cell.status = "ok"
        archive = bundle.with_name(bundle.name + ".tar.gz")
        cell.archive_sha256 = write_archive(bundle, archive)
        cell.bundle, cell.archive = str(rel), str(rel) + ".tar.gz"

    def _lower(self, p: PlannedCell, bundle: Path, tmp: Path, log: Path, strategy: str,
               attempt: dict) -> bool:
        cell, opts = p.cell, self.opts
        spec = {
            "target": cell.target, "model": self.simplified, "precision": cell.precision,
            "profile": p.profile.source, "out_dir": bundle, "batch": self.evaluation.batch,
            "calib": (self.work / "data" / "calib.npz") if self.calib else None,
            "calib_kind": self.calib.kind if self.calib else None,
            "calib_source": self.calib.source if self.calib else None,
            "options": {"calibration_method": opts.calibration_method, "timeout": opts.timeout,
                        "variant": cell.variant, "strategy": strategy,
                        "cache_dir": str(self.work / "cache" / cell.target),
                        "log": str(log), **opts.target_options},
        }
        res = run_child("lower", spec, tmp, log, opts.timeout)
        cell.timings["lower_s"] = round(cell.timings.get("lower_s", 0) + res.seconds, 3)
        attempt.update(seconds=round(res.seconds, 3),
                       peak_rss_bytes=res.result.get("peak_rss_bytes"))
        if not res.ok:
            cell.fail(f"lowering failed: {res.reason}")
            return False
        result = {k: v for k, v in res.result.items() if k != "peak_rss_bytes"}
        lowered = Lowered(**result)
        attempt.update({k: v for k, v in lowered.stats.items()})
        cell.notes = list(lowered.notes)
        self.lowered = lowered
        self._write_bundle_files(p, bundle, lowered)
        return True

    def _write_bundle_files(self, p: PlannedCell, bundle: Path, lowered: Lowered) -> None:
        cell, profile = p.cell, p.profile
        target = p.target
        golden = self.evaluation.head(GOLDEN_FEEDS)
        n = len(golden) * golden.batch
        budget = _budget(self.opts, profile, cell)
        manifest = {
            "source": {"file": self.opts.model.name, "sha256": self.report.source["sha256"],
                       "simplified_sha256": sha256_file(self.simplified)},
            "target": cell.target, "precision": cell.precision, "variant": cell.variant,
            "profile": {k: getattr(profile, k) for k in
                        ("name", "description", "arch", "cpu", "os", "python", "glibc")},
            "runtime": {"name": target.runner.backend_name, "package": target.package,
                        "verified_version": target.runtime_version(),
                        "requires": _version_range(target.runtime_version()),
                        "options": lowered.runtime_options},
            "model_file": lowered.model_file, "batch": golden.batch,
            "threads": self.opts.threads or profile.threads,
            "inputs": lowered.inputs, "outputs": lowered.outputs,
            "preprocessing": None,
            "selftest": {"min_cosine": budget.min_cosine, "max_rel_error": budget.max_rel_error,
                         "golden_samples": n},
            "notes": lowered.notes,
        }
        header = (f"# {cell.target} bundle for {profile.name}: {profile.arch}, CPython "
                  f"{profile.python}, glibc {profile.glibc} ({profile.os}).\n"
                  f"# Pinned to the versions edgepack verified this bundle with.\n")
        golden_out = {k: v[:n] for k, v in self.reference_outputs.items()}
        write_bundle(bundle, manifest, golden.arrays, golden_out,
                     target.requirements(profile), header)

    def _verify(self, p: PlannedCell, bundle: Path, tmp: Path, log: Path, threads: int,
                budget: AccuracyBudget, attempt: dict) -> bool:
        cell, lowered = p.cell, self.lowered
        out = tmp / "outputs.npz"
        spec = {"target": cell.target, "model": bundle / lowered.model_file,
                "inputs": lowered.inputs, "outputs": lowered.outputs, "threads": threads,
                "options": lowered.runtime_options,
                "data": self.work / "data" / "eval.npz", "batch": self.evaluation.batch,
                "out": out}
        res = run_child("evaluate", spec, tmp, log, self.opts.timeout)
        cell.timings["verify_s"] = round(res.seconds, 3)
        if not res.ok:
            cell.fail(f"running the bundle failed: {res.reason}")
            return False
        cell.runtime = res.result.get("runtime")
        with np.load(out) as z:
            outputs = {k: z[k] for k in z.files}
        per_output = compare_outputs(self.reference_outputs, outputs,
                                     self.evaluation.used_labels())
        gates = accuracy_gates(per_output, budget)
        passed, selftest_log = check_bundle(bundle, timeout=self.opts.timeout)
        cell.accuracy = {"data": self.evaluation.kind, "samples": self.evaluation.samples,
                         "source": self.evaluation.source, "outputs": per_output,
                         "budget": vars(budget), "selftest": selftest_log.splitlines()[-1:]}
        cell.gates = [g.to_dict() for g in gates] + [
            {"name": "selftest", "value": float(passed), "limit": 1.0, "kind": "min",
             "ok": passed}]
        attempt["accuracy"] = {name: {k: m.get(k) for k in (
            "cosine", "rel_error", "max_abs", "top1", "top1_agreement") if k in m}
            for name, m in per_output.items()}
        missed = [g.describe() for g in gates if not g.ok]
        if not passed:
            missed.append(f"device selftest failed: {selftest_log.splitlines()[-1:]}")
        if missed:
            cell.fail("accuracy outside budget: " + "; ".join(missed))
            return False
        return True

    def _bench(self, p: PlannedCell, bundle: Path, tmp: Path, log: Path, threads: int) -> None:
        cell, opts = p.cell, self.opts
        spec = {"bundle": bundle, "threads": threads, "warmup": opts.warmup,
                "runs": opts.runs, "min_time": opts.min_time}
        res = run_child("bench", spec, tmp, log, opts.timeout)
        cell.timings["bench_s"] = round(res.seconds, 3)
        cell.size = sum((bundle / f).stat().st_size for f in self.lowered.files)
        if not res.ok:
            cell.fail(f"benchmark failed: {res.reason}")
            return
        r = res.result
        cell.latency = {**r["latency_ms"], "threads": r["threads"],
                        "cold_start_ms": r["cold_start_ms"], "measured_on": "build host"}
        cell.memory = r["memory"]
        cell.runtime = {**(cell.runtime or {}), "bench": r["runtime"]}

    def _write_reports(self) -> None:
        from edgepack.report.render import to_html, to_json, to_markdown

        (self.stage / "report.json").write_text(to_json(self.report))
        (self.stage / "report.md").write_text(to_markdown(self.report))
        (self.stage / "report.html").write_text(to_html(self.report))

    def _move_into_place(self, out_root: Path) -> None:
        out_root.mkdir(parents=True, exist_ok=True)
        final = out_root / self.name
        old = self.work / "previous"
        if final.exists():
            final.rename(old)
        self.stage.rename(final)
        self.report_dir = final


def _version_range(version: str) -> str:
    major = version.split(".")[0]
    return f">={version},<{int(major) + 1}" if major.isdigit() else f"=={version}"


def build(opts: BuildOptions, progress: Progress | None = None) -> tuple[Report, Path]:
    """Run a build; return its report and the directory it was written to."""
    b = Build(opts, progress)
    report = b.run()
    return report, b.report_dir
