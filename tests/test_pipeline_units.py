"""The pipeline's pieces in this process: the plan, a cell's steps and record, the cache's
keys. (The end-to-end tests run them through the CLI.)"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from edgepack.errors import TargetError, UsageError
from edgepack.gates import Gate
from edgepack.options import (
    CELL,
    PREPARE,
    CellId,
    build_options,
    cache_values,
    report_settings,
)
from edgepack.pipeline.attempts import Tried, Verified, candidates, keep_rejected
from edgepack.pipeline.bundling import CellPaths
from edgepack.pipeline.cache import BuildCache
from edgepack.pipeline.cells import CellContext, Outcome, build_cell, failure_reason, finish
from edgepack.pipeline.options import validate
from edgepack.pipeline.plan import plan, select_cells
from edgepack.report.model import Attempt
from edgepack.speed import Decision, Source, Verdict
from edgepack.targets.base import Lowered, Strategy
from tests.conftest import make_matmul_model


@pytest.fixture
def model(tmp_path) -> Path:
    return make_matmul_model(tmp_path / "tiny.onnx", features=4, classes=3)


def _opts(model: Path, tmp_path: Path, **values):
    return build_options({"model": model, "output": tmp_path / "dist", **values})


# --------------------------------------------------------------------------- plan
def test_plan_builds_fp32_first_as_the_baseline(model, tmp_path):
    cells = plan(_opts(model, tmp_path, profiles=("rpi4",), targets=("ort",),
                       precisions=("int8", "fp16")))
    assert [p.cell.key for p in cells] == ["rpi4/ort-fp32", "rpi4/ort-int8", "rpi4/ort-fp16"]
    assert "speed baseline" in " ".join(cells[0].cell.notes)
    assert [s.name for s in cells[1].strategies] == ["qdq-all", "qdq-compute", "qdq-matmul"]
    assert cells[1].strategies[1].op_types  # typed parameters, not a name to parse


def test_plan_narrows_strategies_and_selects_cells(model, tmp_path):
    opts = _opts(model, tmp_path, profiles=("rpi4",), targets=("ort",),
                 precisions=("int8-dynamic",), strategy="dynamic-all")
    cells = plan(opts)
    assert [s.name for s in cells[1].strategies] == ["dynamic-all"]
    picked = select_cells((CellId.parse("rpi4/ort-int8-dynamic"),),
                          plan(replace(opts, strategy=None)))
    assert [p.cell.key for p in picked] == ["rpi4/ort-fp32", "rpi4/ort-int8-dynamic"]
    with pytest.raises(TargetError, match="no such cell"):
        select_cells((CellId.parse("rpi4/nothing"),), cells)


def test_plan_refuses_what_cannot_be_built(model, tmp_path):
    with pytest.raises(TargetError, match="strategy 'nope' matches none"):
        plan(_opts(model, tmp_path, targets=("ort",), strategy="nope"))
    with pytest.raises(UsageError, match="--cell names no cell"):
        validate(_opts(model, tmp_path, cells=()))


# --------------------------------------------------------------------------- cell record
class _Prepared:
    branch_inputs = ["mode"]


def _ctx(tmp_path: Path, **values) -> CellContext:
    opts = _opts(tmp_path / "m.onnx", tmp_path, **values)
    return CellContext(opts, _Prepared(), tmp_path / "work", tmp_path / "stage",
                       {"host": "here"}, threading.Lock())


def test_a_cell_record_is_written_once_from_its_outcome(model, tmp_path):
    ctx = _ctx(tmp_path)
    (p, _) = plan(_opts(model, tmp_path, profiles=("rpi4",), targets=("ort",),
                        precisions=("fp32",)))[:1] * 2
    paths = CellPaths.of(ctx.stage, ctx.work, p.cell)
    lowered = Lowered("model.ort", ["model.ort"], [], [], notes=["lowered note"])
    verified = Verified(lowered, {"outputs": {}}, [{"name": "g", "ok": True}], {"r": 1}, True,
                        None)
    tried = Tried((Attempt("default", "accepted"),), verified, verified, 1.5, 0.5)
    cell = finish(ctx, p, paths, Outcome(tried, failure="benchmark failed: boom"))
    assert cell.status == "failed" and cell.reason == "benchmark failed: boom"
    assert cell.notes[-1] == "lowered note" and cell.runtime == {"r": 1}
    assert cell.timings == {"lower_s": 1.5, "verify_s": 0.5} and cell.latency is None
    assert p.cell.status == "pending"  # the planned record is not written to


def test_failure_reason_names_attempts_and_the_flag_that_may_help(tmp_path):
    ctx = _ctx(tmp_path)
    tried = Tried((Attempt("a", "skipped", reason="not installed"),
                   Attempt("b", "rejected", reason="lowering failed: x", model="prepared"),
                   Attempt("b", "rejected", reason="accuracy outside budget", model="minimal")))
    reason = failure_reason(ctx, tried)
    assert reason.startswith("all 2 attempts rejected (strategies: b; prepared models: "
                             "prepared, minimal); last: accuracy outside budget")
    assert "--fix-input mode=VALUE" in reason
    only_skipped = Tried((Attempt("a", "skipped", reason="not installed"),))
    assert failure_reason(replace(ctx, opts=replace(ctx.opts, fix_inputs={"mode": (1.0,)})),
                          only_skipped) == "no lowering strategy is available: a: not installed"


def test_a_rejected_bundle_is_kept_under_failed(tmp_path):
    bundle = tmp_path / "stage" / "rpi4" / "ort-fp32"
    bundle.mkdir(parents=True)
    (bundle / "model.ort").write_bytes(b"x")
    cell = type("C", (), {"profile": "rpi4", "name": "ort-fp32"})()
    kept = keep_rejected(tmp_path / "stage", cell, bundle, 2, "onnx2tf-1.29 +unroll-rnn",
                         "minimal")
    assert kept == "failed/rpi4/ort-fp32/2-onnx2tf-1.29-unroll-rnn-minimal"
    assert (tmp_path / "stage" / kept / "model.ort").is_file() and not bundle.exists()


def test_native_strategies_come_first_and_only_for_their_format(tmp_path):
    models = {"prepared": tmp_path / "p.onnx", "minimal": tmp_path / "m.onnx"}
    models["prepared"].write_bytes(b"1")
    models["minimal"].write_bytes(b"2")
    source = type("S", (), {"format": "tflite", "path": tmp_path / "model.tflite"})()
    prepared = type("P", (), {"imported": type("I", (), {"source": source})(),
                              "models": models, "model": models["prepared"]})()
    target = type("T", (), {"standard_ops_only": True})()
    strategies = [Strategy("native", source_formats=("tflite",)), Strategy("convert")]
    planned = type("PC", (), {"strategies": strategies, "target": target})()
    tries = [(label, s.name) for label, _, s in candidates(prepared, {}, planned)]
    assert tries == [("source", "native"), ("prepared", "convert"), ("minimal", "convert")]
    fixed = [(label, s.name) for label, _, s in candidates(prepared, {"x": (1.0,)}, planned)]
    assert fixed == [("prepared", "convert"), ("minimal", "convert")]


def test_strategies_cross_the_process_boundary_whole():
    s = Strategy("x", op_types=("MatMul",), rewrites=("unroll-rnn",), accuracy_control=True)
    assert Strategy.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    assert s.with_rewrite("r").rewrites == ("unroll-rnn", "r")


# --------------------------------------------------------------------------- cache keys
def test_cache_keys_follow_the_option_table(model, tmp_path):
    cache = BuildCache(tmp_path / "cache")
    data = tmp_path / "d.npz"
    data.write_bytes(b"one")
    opts = _opts(model, tmp_path, profiles=("rpi4",), targets=("ort",), precisions=("fp32",),
                 data=data)
    (p,) = plan(opts)
    from edgepack.importers import parse_model

    source = parse_model(model)
    pkey = cache.prepare_key(opts, source, False)
    key = cache.cell_key(pkey, opts, p)
    assert cache.cell_key(pkey, replace(opts, runs=99), p) == key  # timing: not in the key
    assert cache.cell_key(pkey, replace(opts, min_cosine=0.5), p) != key
    assert cache.cell_key(pkey, replace(opts, max_size_mb=3.0), p) != key
    data.write_bytes(b"two")  # the data file's content, not its path
    assert cache.prepare_key(opts, source, False) != pkey
    assert "data" in cache_values(opts, PREPARE) and "min_cosine" in cache_values(opts, CELL)
    assert report_settings(opts)["calibration_method"] == "minmax"


def test_a_cell_is_built_in_process_with_a_real_target(model, tmp_path):
    """build_cell itself (its children are real processes) on the ort target."""
    from edgepack.pipeline.prepare import prepare

    opts = _opts(model, tmp_path, profiles=("x86-64",), targets=("ort",),
                 precisions=("fp32",), runs=5)
    work, stage = tmp_path / "work", tmp_path / "work" / "stage" / "tiny"
    prepared = prepare(opts, False, work, stage, lambda message: None)
    (p,) = plan(opts)
    cell = build_cell(CellContext(opts, prepared, work, stage, {"host": "here"}), p)
    assert cell.status == "ok", cell.reason
    assert [a.outcome for a in cell.attempts] == ["accepted"]
    assert cell.latency.runs == 5 and cell.archive_sha256
    assert (stage / cell.archive).is_file()


def test_a_second_holder_of_a_folder_lock_waits_for_the_first(tmp_path):
    """procs.locked serializes processes: publishing into one output folder, and two CI jobs
    installing one toolchain (the second then finds it installed instead of racing pip).
    The kernel's own table of locks (/proc/locks, "->" marks a waiter) shows the second
    process blocked on the lock, however slowly it started."""
    import subprocess
    import sys
    import time

    from edgepack import procs

    mark = tmp_path / "second-got-it"
    code = ("import pathlib, sys; from edgepack import procs\n"
            "with procs.locked(pathlib.Path(sys.argv[1])):\n"
            "    pathlib.Path(sys.argv[2]).write_text('x')\n")
    with procs.locked(tmp_path / "folder"):
        child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "folder"),
                                  str(mark)])
        deadline = time.monotonic() + 60
        while not _waits_on_a_lock(child.pid) and time.monotonic() < deadline:
            assert child.poll() is None and not mark.exists()  # never past the lock
            time.sleep(0.05)
        assert _waits_on_a_lock(child.pid) and not mark.exists()
    assert child.wait(timeout=60) == 0 and mark.exists()


def _waits_on_a_lock(pid: int) -> bool:
    """Whether ``pid`` is blocked waiting for a file lock (a "->" line of /proc/locks)."""
    return any(line.split()[1] == "->" and str(pid) in line.split()
               for line in Path("/proc/locks").read_text().splitlines())


def test_failure_reason_names_the_closest_measured_attempt(tmp_path):
    """A last attempt that made no bundle (nothing to quantize) does not hide the one that
    missed the budget by a hair."""
    ctx = _ctx(tmp_path)
    tried = Tried((Attempt("qdq-all", "rejected", model="prepared",
                           reason="accuracy outside budget: y.cosine 0.9794 (needs >= 0.98)",
                           accuracy={"y": {"cosine": 0.9794}}),
                   Attempt("qdq-matmul", "rejected", model="prepared",
                           reason="lowering failed: NothingToQuantize")))
    reason = failure_reason(ctx, tried)
    assert ("; last: lowering failed: NothingToQuantize; closest: qdq-all on the prepared "
            "model: accuracy outside budget: y.cosine 0.9794 (needs >= 0.98)") in reason


def test_a_declined_cell_shows_the_numbers_of_the_bundle_its_reason_names(model, tmp_path):
    """An accurate bundle refused for speed, then a later strategy that misses the budget:
    the declined row's accuracy and gates are the accurate bundle's, not the last one's."""
    ctx = _ctx(tmp_path)
    p = plan(_opts(model, tmp_path, profiles=("rpi4",), targets=("ort",),
                   precisions=("int8-dynamic",)))[1]
    paths = CellPaths.of(ctx.stage, ctx.work, p.cell)

    def verified(cosine: float, passed: bool) -> Verified:
        return Verified(Lowered("model.ort", ["model.ort"], [], []),
                        {"outputs": {"y": {"cosine": cosine}}},
                        (Gate.check("y.cosine", cosine, 0.98, "min"),), {}, passed, None)

    slow = Decision(Source.HOST, 0.97, 0.9, 1.05, 1.0, Verdict.UNDECIDED, "host", 7)
    tried = Tried((Attempt("matmul", "rejected", reason="not shown faster", speed=slow),
                   Attempt("all", "rejected", reason="accuracy outside budget")),
                  None, verified(0.88, False), closest=verified(0.9999, False))
    cell = finish(ctx, p, paths, Outcome(tried))
    assert cell.status == "declined"
    assert cell.accuracy["outputs"]["y"]["cosine"] == 0.9999
    assert [g.ok for g in cell.gates if g.name == "y.cosine"] == [True]
