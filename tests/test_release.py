"""CI release builds: the config file, release gates, JUnit XML, report compare, the
plan → build --cell → report merge path, the build cache, --jobs and the Python API.
Real builds of the digits sample with ONNX Runtime (a few seconds per cell)."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLES, run_cli
from tests.helpers.reports import cells_by_key, read_report

DIGITS = SAMPLES / "digits_cnn.onnx"
DATA = ("--eval", str(SAMPLES / "digits_cnn.npz"), "--calib",
        str(SAMPLES / "digits_cnn_calib.npz"))




def _statuses(report: dict) -> dict[str, str]:
    return {key: c["status"] for key, c in cells_by_key(report).items()}


def _config(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "edgepack.toml"
    path.write_text(body)
    return path


def test_config_reproduces_the_demo_build_with_no_flags(tmp_path):
    """The repo's edgepack.toml is what `make demo` runs: copied beside the samples, a bare
    `edgepack build` there builds the demo's cells, and the config's gates are recorded."""
    folder = tmp_path / "project"
    shutil.copytree(SAMPLES, folder / "sample_models")
    shutil.copy(ROOT / "edgepack.toml", folder / "edgepack.toml")
    r = run_cli("build", cwd=folder)
    assert r.returncode == 0, r.stderr
    report = read_report(folder / "dist")
    assert _statuses(report) == {"rpi4/ort-fp32": "ok", "rpi4/ort-fp16": "ok",
                              "rpi4/ort-int8": "ok"}
    gates = {g["name"]: g for g in report["cells"][0]["gates"]}
    assert {"size_mb", "peak_rss_mb"} <= set(gates)
    # the latency gate uses the best source: rpi4's estimate (a p50) stands for the p90 asked
    latency = gates["latency.p50_ms (estimated)"]
    assert latency["limit"] == 5.0 and "p90, estimate for Cortex-A72" in latency["gate"]
    demo = (ROOT / "Makefile").read_text().split("\ndemo:")[1].split("\n\n")[0]
    assert "$(BIN)/edgepack build   #" in demo  # make demo is exactly this build


@pytest.mark.parametrize(("body", "message"), [
    ('model = "m.onnx"\n[[models]]\nmodel = "x.onnx"\n', "top level and in [[models]]"),
    ('[[models]]\nmodel = "m.onnx"\nprecison = ["fp32"]\n',
     "edgepack.toml: models[0].precison: unknown key (did you mean 'precisions'?)"),
    ('model = "m.onnx"\nruns = "many"\n', "edgepack.toml: runs: 'many' is not an integer "
     "(timed runs per bundle)"),
    ('model = "m.onnx"\nprecisions = ["fp64"]\n', "edgepack.toml: precisions: 'fp64' is not "
     "valid"),
    ('model = "m.onnx"\ntargets = "ort"\n', "edgepack.toml: targets: 'ort' is a string; write "
     "a list"),
    ('model = "m.onnx"\n[[gates]]\nmax_latency = 3\n', "gates[0].max_latency: unknown gate key"),
    ('model = "m.onnx"\n[[gates]]\nmax_latency_ms = -1\n',
     "gates[0].max_latency_ms: -1.0 is out of range"),
    ('model = "m.onnx\n', "is not valid TOML"),
])
def test_config_mistakes_are_exit_2_naming_the_key(tmp_path, body, message):
    _config(tmp_path, body)
    r = run_cli("build", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "dist").exists()


def test_no_model_and_no_config_says_what_to_pass(tmp_path):
    r = run_cli("build", cwd=tmp_path)
    assert r.returncode == 2
    assert "no MODEL given and no edgepack.toml" in r.stderr


def test_missed_gate_fails_the_build_and_names_the_gate(tmp_path):
    out = tmp_path / "dist"
    r = run_cli("build", DIGITS, "--target", "ort", "--precision", "fp32", "--profile",
                "x86-64", *DATA, "--runs", "20", "--max-latency-ms", "0.000001",
                "--max-size-mb", "100", "-o", out)
    assert r.returncode == 1, r.stderr
    md = (out / "digits_cnn" / "report.md").read_text()
    assert "## Gates missed" in md and "max_latency_ms" in md
    cell = read_report(out)["cells"][0]
    assert cell["status"] == "failed" and "release gate missed: max_latency_ms" in cell["reason"]
    size = next(g for g in cell["gates"] if g["name"] == "size_mb")
    assert size["ok"] and size["limit"] == 100
    assert not (out / "digits_cnn" / "x86-64" / "ort-fp32.tar.gz").exists()  # not shipped
    junit = ET.parse(out / "digits_cnn" / "junit.xml").getroot()
    assert junit.get("failures") == "1"
    (case,) = junit.iter("testcase")
    failure = case.find("failure")
    assert failure is not None and "max_latency_ms" in failure.get("message")


def test_plan_cells_merge_equals_one_build(tmp_path):
    """plan → `build --cell` parts → `report merge` gives the cells, the archive hashes and
    the evaluation samples of one build (run here with --jobs 2 through the Python API), with
    static int8 in the matrix: a part holding only fp32 still evaluates on the samples the
    whole matrix leaves after calibration."""
    import edgepack

    mobilenet = SAMPLES / "mobilenet_digits.onnx"
    common = dict(model=str(mobilenet), profiles=["x86-64"], targets=["ort", "openvino"],
                  precisions=["fp32", "int8-dynamic", "int8"],
                  data=str(SAMPLES / "mobilenet_digits.npz"), runs=10, min_speedup=0.0)
    whole = edgepack.build(output=str(tmp_path / "whole"), jobs=2, **common)
    assert whole.ok and len(whole.cells) == 6, [(c.key, c.reason) for c in whole.cells]

    args = [mobilenet, "--profile", "x86-64", "--target", "ort,openvino", "--precision",
            "fp32,int8-dynamic,int8", "--data", SAMPLES / "mobilenet_digits.npz", "--runs",
            "10", "--min-speedup", "0"]
    r = run_cli("plan", *args)
    assert r.returncode == 0, r.stderr
    matrix = json.loads(r.stdout)
    assert sorted(e["cell"] for e in matrix["include"]) == ["x86-64/openvino", "x86-64/ort"]
    assert matrix == edgepack.plan(**common)
    parts = []
    for cells in (["x86-64/ort"], ["x86-64/openvino-fp32"],
                  ["x86-64/openvino-int8-dynamic", "x86-64/openvino-int8"]):
        part = tmp_path / cells[-1].replace("/", "-")
        r = run_cli("build", *args, *(a for c in cells for a in ("--cell", c)), "-o", part)
        assert r.returncode == 0, r.stderr
        parts.append(part)
    fp32_only = json.loads((parts[1] / "mobilenet_digits" / "report.json").read_text())
    assert fp32_only["data"] == json.loads(
        (tmp_path / "whole" / "mobilenet_digits" / "report.json").read_text())["data"]
    assert fp32_only["data"]["split"]["eval_samples"] < 300  # split, though it calibrates none
    r = run_cli("report", "merge", *parts, "-o", tmp_path / "merged")
    assert r.returncode == 0, r.stderr
    merged = json.loads((tmp_path / "merged" / "mobilenet_digits" / "report.json").read_text())
    assert {f"{c['profile']}/{c['target']}-{c['precision']}": c["status"]
            for c in merged["cells"]} == {c.key: c.status for c in whole.cells}
    sums = (tmp_path / "merged" / "mobilenet_digits" / "SHA256SUMS").read_text()
    assert sums == (tmp_path / "whole" / "mobilenet_digits" / "SHA256SUMS").read_text()
    assert len(sums.splitlines()) == 6
    junit = ET.parse(tmp_path / "merged" / "mobilenet_digits" / "junit.xml").getroot()
    assert junit.get("tests") == "6" and junit.get("failures") == "0"

    r = run_cli("build", *args, "--cell", "x86-64/coreml", "-o", tmp_path / "x")
    assert r.returncode == 2 and "--cell x86-64/coreml: no such cell" in r.stderr


def test_merging_two_folders_with_different_bundles_of_a_cell_is_refused(tmp_path):
    """The same cell built twice, differently: merge names the cell and both folders, writes
    nothing, and --prefer chooses."""
    args = [DIGITS, "--profile", "x86-64", "--target", "ort", "--precision", "fp32",
            "--runs", "10"]
    assert run_cli("build", *args, "-o", tmp_path / "a").returncode == 0
    assert run_cli("build", *args, "--min-cosine", "0.5", "-o", tmp_path / "b").returncode == 0
    manifest = tmp_path / "b" / "digits_cnn" / "x86-64" / "ort-fp32" / "manifest.json"
    report = json.loads((tmp_path / "b" / "digits_cnn" / "report.json").read_text())
    report["cells"][0]["archive_sha256"] = "0" * 64  # as if built from other settings
    (tmp_path / "b" / "digits_cnn" / "report.json").write_text(json.dumps(report))
    assert manifest.is_file()
    r = run_cli("report", "merge", tmp_path / "a", tmp_path / "b", "-o", tmp_path / "out")
    assert r.returncode == 2, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert "cell x86-64/ort-fp32 differs between" in line and "--prefer" in line
    assert str(tmp_path / "a") in line and str(tmp_path / "b") in line
    assert not (tmp_path / "out").exists()
    r = run_cli("report", "merge", tmp_path / "a", tmp_path / "b", "--prefer", tmp_path / "a",
                "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    merged = json.loads((tmp_path / "out" / "digits_cnn" / "report.json").read_text())
    assert merged["cells"][0]["archive_sha256"] != "0" * 64


def test_cache_restores_an_unchanged_rebuild_and_misses_a_changed_one(tmp_path):
    cache = tmp_path / "cache"
    args = [DIGITS, "--profile", "rpi4", "--target", "ort", "--precision", "fp32,int8", *DATA,
            "--runs", "20", "--min-speedup", "0", "--cache", cache]
    first = run_cli("build", *args, "-o", tmp_path / "a")
    assert first.returncode == 0, first.stderr
    again = run_cli("build", *args, "-o", tmp_path / "b")
    assert again.returncode == 0, again.stderr
    assert "2 cell(s) restored from the build cache" in again.stderr
    a, b = read_report(tmp_path / "a"), read_report(tmp_path / "b")
    assert all(c["cached"] and c["cached"]["built"] for c in b["cells"])
    assert [c["latency"] for c in a["cells"]] == [c["latency"] for c in b["cells"]]
    assert (tmp_path / "a" / "digits_cnn" / "SHA256SUMS").read_text() == \
        (tmp_path / "b" / "digits_cnn" / "SHA256SUMS").read_text()
    assert "Restored from the build cache" in (tmp_path / "b/digits_cnn/report.md").read_text()
    assert b["stages"] == a["stages"] and b["source"] == a["source"]
    # the restored archives pass their own checks and selftest
    r = run_cli("verify", tmp_path / "b" / "digits_cnn" / "rpi4" / "ort-int8.tar.gz")
    assert r.returncode == 0, r.stderr

    rebench = run_cli("build", *args, "--rebench", "-o", tmp_path / "c")
    assert rebench.returncode == 0, rebench.stderr
    assert all(c["cached"]["rebenchmarked"] for c in read_report(tmp_path / "c")["cells"])

    changed = run_cli("build", *args, "--min-cosine", "0.99", "-o", tmp_path / "d")
    assert changed.returncode == 0, changed.stderr
    assert not any(c["cached"] for c in read_report(tmp_path / "d")["cells"])


def test_report_compare_flags_a_latency_regression_and_passes_a_rerun(tmp_path):
    """Two builds of the same bundles (the second re-times cached cells) compare clean; the
    same report with every latency made 20% slower is a regression (exit 1)."""
    args = [DIGITS, "--profile", "x86-64", "--target", "ort", "--precision", "fp32", *DATA,
            "--min-time", "0.5", "--bench-rounds", "3", "--cache", tmp_path / "cache"]
    assert run_cli("build", *args, "-o", tmp_path / "old").returncode == 0
    r = run_cli("build", *args, "--rebench", "-o", tmp_path / "new")
    assert r.returncode == 0, r.stderr
    assert len(read_report(tmp_path / "new")["cells"][0]["latency"]["rounds_p50_ms"]) == 3
    same = run_cli("report", "compare", tmp_path / "old", tmp_path / "new")
    assert same.returncode == 0, same.stdout + same.stderr
    assert "No regression." in same.stdout

    # the injected case starts from a steady measurement (rounds equal to the p50): a real
    # round on this host can be off by half, and then no 20% change is provable
    base, slow = tmp_path / "base" / "digits_cnn", tmp_path / "slow" / "digits_cnn"
    shutil.copytree(tmp_path / "old" / "digits_cnn", base)
    steady = json.loads((base / "report.json").read_text())
    for cell in steady["cells"]:
        cell["latency"]["rounds_p50_ms"] = [cell["latency"]["p50"]] * 3
        cell["latency"]["p90"] = cell["latency"]["p50"]
    (base / "report.json").write_text(json.dumps(steady))
    shutil.copytree(base, slow)
    report = json.loads((slow / "report.json").read_text())
    for cell in report["cells"]:
        lat = cell["latency"]
        for key in ("p50", "p90", "p99", "mean", "min", "max"):
            lat[key] *= 1.2
        lat["rounds_p50_ms"] = [x * 1.2 for x in lat["rounds_p50_ms"]]
    (slow / "report.json").write_text(json.dumps(report))
    worse = run_cli("report", "compare", base / "report.json", slow / "report.json", "--json")
    assert worse.returncode == 1, worse.stdout + worse.stderr
    result = json.loads(worse.stdout)
    (reg,) = [d for d in result["deltas"] if d["regression"]]
    assert reg["metric"] == "host p50 ms" and reg["change"].startswith("+20.0")

    other = json.loads((slow / "report.json").read_text())
    other["host"]["cpu"] = "Some ARM board"
    (slow / "report.json").write_text(json.dumps(other))
    cross = run_cli("report", "compare", base / "report.json", slow / "report.json")
    assert cross.returncode == 0, cross.stdout
    assert "different hosts" in cross.stdout and "not gated" in cross.stdout


def test_merge_refuses_folders_of_different_models(tmp_path):
    a, b = tmp_path / "a" / "digits_cnn", tmp_path / "b" / "digits_cnn"
    for folder, sha in ((a, "1" * 64), (b, "2" * 64)):
        folder.mkdir(parents=True)
        folder.joinpath("report.json").write_text(json.dumps({
            "edgepack_version": "0", "created": "", "source": {"file": "digits_cnn.onnx",
                                                               "sha256": sha},
            "host": {}, "tools": {}, "settings": {}, "cells": []}))
    r = run_cli("report", "merge", tmp_path / "a", tmp_path / "b", "-o", tmp_path / "out")
    assert r.returncode == 2 and "different model files" in r.stderr
    assert not (tmp_path / "out").exists()


def test_github_actions_example_runs_plan_cells_merge():
    """examples/github-actions.yml is valid YAML and wires plan → cell matrix → merge with
    the commands this test file exercises."""
    import yaml

    workflow = yaml.safe_load((ROOT / "examples" / "github-actions.yml").read_text())
    jobs = workflow["jobs"]
    assert jobs["cell"]["needs"] == "plan" and jobs["merge"]["needs"] == "cell"
    assert "fromJSON(needs.plan.outputs.matrix)" in jobs["cell"]["strategy"]["matrix"]

    def commands(job: str) -> str:
        return "\n".join(step.get("run", "") for step in jobs[job]["steps"])

    assert "edgepack plan" in commands("plan")
    assert 'edgepack build --cell "${{ matrix.cell }}"' in commands("cell")
    assert "edgepack report merge" in commands("merge")
    assert "edgepack report compare" in commands("merge")


def test_config_schema_is_generated_and_validates_the_demo_config():
    import tomllib

    import jsonschema

    from edgepack.config import config_schema
    from edgepack.schemas import load

    assert load("config") == json.loads(json.dumps(config_schema())), \
        "edgepack/schemas/config.schema.json is stale: python -m edgepack.config > it"
    validator = jsonschema.Draft202012Validator(load("config"))
    demo = tomllib.loads((ROOT / "edgepack.toml").read_text())
    assert not list(validator.iter_errors(demo))
    demo["models"][0]["precison"] = ["fp32"]
    assert list(validator.iter_errors(demo))
