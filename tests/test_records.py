"""The report's typed records: JSON only at the edges, one to_json/from_json pair per record,
reports of earlier versions of the schema read back whole, and cells that nothing writes twice.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re

import pytest

from edgepack.cpus import Estimate
from edgepack.gates import Gate
from edgepack.report.model import Cell, Report, Status
from edgepack.report.records import BoardRun, DeviceEstimate, Emulated, Latency
from edgepack.settings import Precision
from edgepack.speed import Decision, Source, Verdict
from tests.conftest import ROOT

# written by edgepack before the records were typed (commit 5643903): rpi4 and rpi5, ort,
# fp32 and int8, device estimates, --emulate and a loopback board on rpi4
OLD_REPORT = ROOT / "tests" / "data" / "report-schema3.json"


def _missing_or_changed(old, new, path="") -> list[str]:
    """Where ``new`` lacks or changes something ``old`` has (added keys are allowed: keys
    are only ever added within a schema version)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [p for k in old for p in (
            [f"{path}/{k} missing"] if k not in new else
            _missing_or_changed(old[k], new[k], f"{path}/{k}"))]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [p for i, (a, b) in enumerate(zip(old, new, strict=True))
                for p in _missing_or_changed(a, b, f"{path}[{i}]")]
    return [] if old == new else [f"{path}: {old!r} -> {new!r}"[:160]]


def test_a_report_of_the_same_schema_reads_back_whole():
    old = json.loads(OLD_REPORT.read_text())
    report = Report.from_json(old)
    again = json.loads(json.dumps(report.to_json()))
    assert _missing_or_changed(old, again) == []
    assert Report.from_json(again) == report


def test_records_are_typed_from_json_on():
    report = Report.from_json(json.loads(OLD_REPORT.read_text()))
    cells = {c.key: c for c in report.cells}
    int8, fp32 = cells["rpi4/ort-int8"], cells["rpi4/ort-fp32"]
    assert int8.precision is Precision.INT8 and int8.status is Status.OK
    assert isinstance(int8.speed, Decision) and int8.speed.source is Source.ESTIMATE
    assert isinstance(int8.speed.host, Decision) and int8.speed.host.source is Source.HOST
    assert isinstance(int8.device, DeviceEstimate) and isinstance(int8.device.estimate,
                                                                  Estimate)
    assert isinstance(int8.emulated, Emulated) and int8.emulated.status == "ok"
    assert all(isinstance(g, Gate) for g in (*int8.gates, *int8.emulated.gates))
    speed_gate = next(g for g in int8.gates if g.name == "speedup")
    assert speed_gate.decision.verdict is Verdict.FASTER and speed_gate.ok
    (board,) = fp32.boards
    assert isinstance(board, BoardRun) and isinstance(board.latency, Latency)
    assert board.latency.source is Source.BOARD and isinstance(fp32.latency, Latency)


def test_cells_and_reports_are_frozen():
    cell = Cell("rpi5", "ort", Precision.FP32)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cell.status = Status.OK
    assert isinstance(cell.notes, tuple) and isinstance(cell.attempts, tuple)
    assert cell.noted("a").notes == ("a",) and cell.notes == ()
    report = Report.from_json(json.loads(OLD_REPORT.read_text()))
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.cells = ()


def test_a_gate_describes_itself_once():
    gate = Gate.check("y.cosine", 0.9794, 0.98, "min")
    assert not gate.ok and gate.describe() == "y.cosine 0.9794 (needs >= 0.98)"
    release = Gate.check("size_mb", 2.0, 1.0, "max", "max_size_mb (the bundle's files)")
    assert release.describe() == "max_size_mb: size_mb 2 (needs <= 1)"
    assert Gate.from_json(release.to_json()) == release
    assert not Gate.check("x.cosine", float("nan"), 0.9, "min").ok  # NaN never passes


# --------------------------------------------------------------------------- no key reads
RECORD_FIELDS = ("speed", "device", "gates", "emulated", "boards", "latency", "memory",
                 "cached", "previous")
FIELDS = "|".join(RECORD_FIELDS)
KEY_READ = re.compile(rf"\.(?:{FIELDS})\b\s*(?:or\s*\{{\}}\)?)?\s*(?:\[|\.get\()")
EDGES = {"edgepack/report/records.py", "edgepack/report/model.py", "edgepack/speed.py",
         "edgepack/gates.py", "edgepack/cpus.py"}


def test_no_string_key_read_of_a_record_outside_its_json_pair():
    """A cell's estimate, decision, gates, device runs and latency are read as attributes
    everywhere but in their own (de)serialisation."""
    offenders = []
    for path in sorted((ROOT / "edgepack").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in EDGES or rel.startswith("edgepack/device/"):
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if KEY_READ.search(line):
                offenders.append(f"{rel}:{n}: {line.strip()}")
    assert offenders == []
    assert KEY_READ.search('x = (cell.speed or {}).get("speedup")')
    assert KEY_READ.search('d = cell.device["p50_ms"]')


# --------------------------------------------------------------------------- precisions
PRECISION_NAMES = {p.value for p in Precision}


def precision_literals(source: str) -> list[int]:
    """Lines comparing a value with a bare precision name ("fp32" == x, x in ("int8", ...))."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        for side in (node.left, *node.comparators):
            consts = side.elts if isinstance(side, ast.Tuple | ast.List | ast.Set) else [side]
            if any(isinstance(c, ast.Constant) and c.value in PRECISION_NAMES for c in consts):
                found.append(node.lineno)
    return found


def test_precisions_are_compared_as_the_enum_not_as_strings():
    """(The bundle's runner and the TensorFlow worker run standalone, without edgepack.)"""
    standalone = {"edgepack/importers/tf_worker.py"}
    offenders = [f"{path.relative_to(ROOT)}:{line}"
                 for path in sorted((ROOT / "edgepack").rglob("*.py"))
                 if "device" not in path.relative_to(ROOT).parts
                 and path.relative_to(ROOT).as_posix() not in standalone
                 for line in precision_literals(path.read_text())]
    assert offenders == []
    assert precision_literals('if cell.precision == "fp32": pass') == [1]
    assert precision_literals('if p in ("int8", "int8-dynamic"): pass') == [1]
    assert precision_literals("if p == Precision.FP32: pass") == []
