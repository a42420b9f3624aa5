"""Shared fixtures: the sample models, tiny models built with onnx.helper, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_models"


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None,
            timeout: float = 900) -> subprocess.CompletedProcess:
    """Run ``python -m edgepack ARGS`` as a user would, capturing output."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "edgepack", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=full_env,
                          timeout=timeout)


@pytest.fixture
def cli():
    return run_cli


BLOCKER = """
import runpy, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {blocked!r}:
            raise ModuleNotFoundError('blocked for this test: ' + name)
sys.meta_path.insert(0, Block())
sys.argv = ['run.py', 'selftest']
runpy.run_path('run.py', run_name='__main__')
"""
NOT_ON_DEVICE = ("edgepack", "onnx", "torch", "tensorflow")


def selftest_extracted(archive: Path, tmp_path: Path, runtime: str,
                       others: tuple[str, ...]) -> subprocess.CompletedProcess:
    """Extract a bundle archive and run its `run.py selftest` in a Python that cannot import
    edgepack, onnx, torch, tensorflow or the ``others`` runtimes: only ``runtime`` + numpy."""
    import tarfile

    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path, filter="data")
    (bundle,) = [p for p in tmp_path.iterdir() if (p / "run.py").is_file()]
    blocked = tuple(m for m in (*NOT_ON_DEVICE, *others) if m != runtime)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", BLOCKER.format(blocked=blocked)], cwd=bundle,
                          capture_output=True, text=True, env=env)


def fake_env(**extra: str) -> dict:
    """Environment that registers the fake targets of tests/fake_targets.py."""
    objects = {"wrong": "WRONG", "misbehaving": "MISBEHAVING", "hangselftest": "HANG_SELFTEST",
               "noresult": "NO_RESULT", "strategies": "THREE_STRATEGIES",
               "wrongtflite": "WRONG_TFLITE"}
    targets = ",".join(f"{k}=tests.fake_targets:{v}" for k, v in objects.items())
    return {"EDGEPACK_EXTRA_TARGETS": targets, "PYTHONPATH": str(ROOT), **extra}


def tagged_processes(tag: str) -> list[int]:
    """Live processes whose environment holds EDGEPACK_TEST_TAG=tag."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if f"EDGEPACK_TEST_TAG={tag}".encode() in f.read().split(b"\0"):
                    with open(f"/proc/{entry}/stat") as s:
                        if s.read().rsplit(")", 1)[1].split()[0] != "Z":
                            found.append(int(entry))
        except OSError:
            continue
    return found


NO_SPEED_GATE = ("--min-speedup", "0")  # sample models run in microseconds: int8 cannot
#                                         beat fp32 there; tests about speed use bigger ones
NO_ESTIMATE = ("--device-estimate", "off")  # tests not about device speed skip the counting


def build_sample(model: str, out: Path, *args: str, runs: int = 20):
    """`edgepack build` of a sample model with its labelled eval and calibration data (the
    speed gate reports only)."""
    return run_cli("build", SAMPLES / f"{model}.onnx", "--data", SAMPLES / f"{model}.npz",
                   "--calib", SAMPLES / f"{model}_calib.npz", "--runs", str(runs), "-o", out,
                   *NO_SPEED_GATE, *NO_ESTIMATE, *args)


def make_matmul_model(path: Path, batch: int | str = 1, features: int = 4,
                      classes: int = 3, seed: int = 0) -> Path:
    """A tiny classifier: logits = x @ W + b, with a possibly symbolic batch dim."""
    rng = np.random.default_rng(seed)
    w = helper.make_tensor("W", TensorProto.FLOAT, [features, classes],
                           rng.standard_normal((features, classes)).astype(np.float32).ravel())
    b = helper.make_tensor("B", TensorProto.FLOAT, [classes],
                           rng.standard_normal(classes).astype(np.float32))
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "B"],
                                                                          ["logits"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, features])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


# --------------------------------------------------------------------------- report.json schema
def edgepack_reports(root: Path) -> list[Path]:
    """The report.json files edgepack wrote under ``root``: publishing writes report.md beside
    each one, so a report.json alone is a test's hand-made input (e.g. a stub for ``report
    merge``), not a report of edgepack's."""
    found = []
    for folder, _, names in os.walk(root):
        if "report.json" in names and "report.md" in names:
            found.append(Path(folder) / "report.json")
    return sorted(found)


def report_problem(report: object) -> str | None:
    """The most specific way ``report`` breaks edgepack/schemas/report.schema.json (the
    deepest error's JSON path and message), or None when it is valid."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    from edgepack.schemas import load

    errors = list(Draft202012Validator(load("report")).iter_errors(report))
    if not errors:
        return None
    deepest = max(len(e.absolute_path) for e in errors)
    error = best_match(e for e in errors if len(e.absolute_path) == deepest)
    message = error.message if len(error.message) <= 200 else error.message[:200] + "…"
    why = error.schema.get("description") if isinstance(error.schema, dict) else None
    return f"at {error.json_path}: {message}" + (f" ({why})" if why else "")


@pytest.fixture(scope="session", autouse=True)
def _every_written_report_matches_the_schema(tmp_path_factory):
    """After the session, every report.json the tests had edgepack write (under pytest's
    basetemp) must match the published schema; a mismatch is an error in this teardown."""
    yield
    reports = edgepack_reports(tmp_path_factory.getbasetemp())
    if not reports:
        return
    try:
        import jsonschema  # noqa: F401
    except ImportError:
        pytest.fail("jsonschema is not installed, so the report.json files the tests wrote "
                    "cannot be checked: pip install -e '.[test]'", pytrace=False)
    import json

    bad = []
    for path in reports:
        try:
            problem = report_problem(json.loads(path.read_text()))
        except ValueError as e:
            problem = f"not JSON ({e})"
        if problem:
            bad.append(f"{path}: {problem}")
    if bad:
        pytest.fail(f"{len(bad)} of {len(reports)} report.json files the tests wrote do not "
                    "match edgepack/schemas/report.schema.json:\n" + "\n".join(bad),
                    pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under `make test` (EDGEPACK_TESTS_STRICT=1) nothing may be skipped: a missing emulator,
    counter or browser there is a broken install step, never a reason to pass quietly."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("EDGEPACK_TESTS_STRICT") == "1" \
            and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under make test, where nothing may be: {report.longrepr}"
