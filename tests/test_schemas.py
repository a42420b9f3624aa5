"""The published JSON Schema of report.json (edgepack/schemas/report.schema.json): a real build's
report matches it, reports with non-finite numbers and other cell states match it, and broken
reports do not. (conftest.py also checks every report.json the test session has edgepack write.)
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace

import pytest

from edgepack.gates import Gate
from edgepack.report.model import SCHEMA_VERSION, Attempt, Cell, Report, Status
from edgepack.report.records import DeviceEstimate, Previous
from edgepack.report.render import to_json
from edgepack.schemas import load
from edgepack.settings import Precision
from edgepack.speed import Decision, Source, Verdict, not_compared
from tests.conftest import SAMPLES, edgepack_reports, report_problem, run_cli

jsonschema = pytest.importorskip("jsonschema")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    """report.json of one quick real build (fp32 on ONNX Runtime, x86-64, a release gate so
    the report holds a resource gate too), run outside any edgepack.toml."""
    out = tmp_path_factory.mktemp("schema") / "dist"
    r = run_cli("build", SAMPLES / "digits_cnn.onnx", "--profile", "x86-64", "--target", "ort",
                "--precision", "fp32", "--eval", SAMPLES / "digits_cnn.npz",
                "--max-size-mb", "10", "-o", out, cwd=out.parent)
    assert r.returncode == 0, r.stdout + r.stderr
    (path,) = edgepack_reports(out)
    return json.loads(path.read_text())


def test_the_schema_is_draft_2020_12_of_this_schema_version():
    schema = load("report")
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] and schema["title"] and schema["description"]
    assert schema["properties"]["schema_version"] == {"const": SCHEMA_VERSION}
    assert load("report.schema.json") == schema
    with pytest.raises(FileNotFoundError, match="report.schema.json"):
        load("nonesuch")


def test_every_cell_field_is_described():
    """A field added to Cell or Attempt is added to the schema too (keys may be added within
    a schema version; a report must never carry one the schema does not type)."""
    defs = load("report")["$defs"]
    assert set(Cell.__dataclass_fields__) <= set(defs["cell"]["properties"])
    assert set(Attempt.__dataclass_fields__) <= set(defs["attempt"]["properties"])
    top = load("report")["properties"]
    assert set(Report.__dataclass_fields__) | {"ok"} <= set(top)


def test_a_real_build_report_matches(built):
    assert report_problem(built) is None
    (cell,) = built["cells"]
    assert cell["status"] == "ok" and built["ok"] is True
    assert any(g.get("gate") for g in cell["gates"]), "no resource gate to check"


def test_non_finite_numbers_and_other_cell_states_match(built):
    """What to_json writes for inf/nan, a skipped cell, a failed one keeping the earlier
    bundle, and a speed check without an fp32 bundle are all valid."""
    report = Report.from_json(built)
    ok = report.cells[0]
    ok = replace(ok, gates=(*ok.gates, Gate.check("logits.rel_error", math.inf, 0.01, "max")),
                 attempts=(replace(ok.attempts[0], accuracy={
                     "logits": {"cosine": 0.0, "rel_error": math.inf, "max_abs": -math.inf,
                                "top1": math.nan}}), *ok.attempts[1:]))
    skipped = Cell("x86-64", "ort", Precision.INT8, status=Status.SKIPPED, requested=False,
                   reason="no calibration data")
    failed = Cell("x86-64", "ort", Precision.FP16, status=Status.FAILED,
                  reason="accuracy outside budget", accuracy={}, runtime={},
                  build=dict(ok.build), optional=True,
                  previous=Previous(ok.bundle, ok.archive, ok.archive_sha256, ok.build),
                  attempts=(Attempt("default", "rejected", reason="lowering failed: boom",
                                    speed=not_compared(1.1, "no fp32 bundle to compare with")),))
    declined = Cell("x86-64", "ort", Precision.INT8_DYNAMIC, status=Status.DECLINED,
                    build=dict(ok.build),
                    reason="not faster than fp32: estimated on Cortex-A76",
                    device=DeviceEstimate("not estimated", "the build host is a x86_64"),
                    speed=Decision(Source.ESTIMATE, 0.8, 0.78, 0.82, 1.0, Verdict.NOT_FASTER,
                                   "estimated"))
    report = replace(report, cells=(ok, *report.cells[1:], skipped, failed, declined))
    text = to_json(report)
    assert '"inf"' in text and '"-inf"' in text and '"nan"' in text
    assert report_problem(json.loads(text)) is None


def _set(*path_and_value):
    *path, value = path_and_value

    def change(report: dict) -> None:
        target = report
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def _drop(*path):
    def change(report: dict) -> None:
        target = report
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return change


def _all(*changes):
    def change(report: dict) -> None:
        for one in changes:
            one(report)
    return change


BROKEN = {
    "cell status 'weird'": (_set("cells", 0, "status", "weird"), "$.cells[0].status"),
    "no cells": (_drop("cells"), "$"),
    "another schema version": (_set("schema_version", 1), "$.schema_version"),
    "cells not a list": (_set("cells", {}), "$.cells"),
    "a cell without its status": (_drop("cells", 0, "status"), "$.cells[0]"),
    "requested not a boolean": (_set("cells", 0, "requested", "yes"), "$.cells[0].requested"),
    "gate kind 'between'": (_set("cells", 0, "gates", 0, "kind", "between"),
                            "$.cells[0].gates[0].kind"),
    "gate value 'infinity'": (_set("cells", 0, "gates", 0, "value", "infinity"),
                              "$.cells[0].gates[0].value"),
    "gate without ok": (_drop("cells", 0, "gates", 0, "ok"), "$.cells[0].gates[0]"),
    "latency without p50": (_drop("cells", 0, "latency", "p50"), "$.cells[0].latency"),
    "latency p50 a string": (_set("cells", 0, "latency", "p50", "fast"),
                             "$.cells[0].latency.p50"),
    "latency without measured_on": (_drop("cells", 0, "latency", "measured_on"),
                                    "$.cells[0].latency"),
    "attempt outcome 'maybe'": (_set("cells", 0, "attempts", 0, "outcome", "maybe"),
                                "$.cells[0].attempts[0].outcome"),
    "ok cell without its bundle": (_set("cells", 0, "bundle", None), "$.cells[0].bundle"),
    "ok cell without latency": (_set("cells", 0, "latency", None), "$.cells[0].latency"),
    "archive sha256 not hex": (_set("cells", 0, "archive_sha256", "xyz"),
                               "$.cells[0].archive_sha256"),
    "failed cell without a reason": (_all(_set("cells", 0, "status", "failed"),
                                          _set("ok", False)), "$.cells[0].reason"),
    "ok although no cell is": (_all(_set("cells", 0, "status", "skipped"),
                                    _set("cells", 0, "reason", "not built")), "$.cells"),
    "not ok although all is": (_set("ok", False), "$.cells"),
    "output without shape_ok": (_drop("cells", 0, "accuracy", "outputs", "logits", "shape_ok"),
                                "$.cells[0].accuracy"),
    "accuracy data kind 'guessed'": (_set("cells", 0, "accuracy", "data", "guessed"),
                                     "$.cells[0].accuracy"),
    "host cpus a string": (_set("host", "cpus", "two"), "$.host.cpus"),
    "ok not a boolean": (_set("ok", "true"), "$.ok"),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_broken_report_is_rejected(built, name):
    change, where = BROKEN[name]
    report = copy.deepcopy(built)
    change(report)
    problem = report_problem(report)
    assert problem is not None, f"{name}: accepted"
    assert problem.startswith(f"at {where}"), problem
