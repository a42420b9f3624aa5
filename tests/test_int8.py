"""int8 that is faster and within budget, or is not shipped as int8."""

from __future__ import annotations

import json

import pytest

from edgepack.errors import ProfileError
from edgepack.profiles import DEFAULT_BUDGETS, load_profile
from tests.conftest import NO_SPEED_GATE, ROOT, run_cli
from tests.helpers.reports import cells_in

SAMPLES = ROOT / "sample_models"
DIGITS = ("--eval", SAMPLES / "digits_cnn.npz", "--calib", SAMPLES / "digits_cnn_calib.npz")
MOBILENET = ("--data", SAMPLES / "mobilenet_digits.npz", "--calib",
             SAMPLES / "mobilenet_digits_calib.npz")



def test_int8_slower_than_fp32_is_not_shipped(tmp_path):
    # dynamic int8 on a 15-microsecond CNN only adds quantization work: slower than fp32 on
    # the A72 (its instructions counted under qemu); --min-speedup makes that a failure
    out = tmp_path / "dist"
    r = run_cli("build", SAMPLES / "digits_cnn.onnx", "--profile", "rpi4", "--target", "ort",
                "--precision", "int8-dynamic", *DIGITS, "--runs", "20", "--min-speedup", "1",
                "-o", out)
    assert r.returncode == 1, r.stderr
    cells = cells_in(out, "digits_cnn", profile=False)
    assert cells["ort-fp32"]["status"] == "ok"  # added as the speed baseline
    assert "built as the speed baseline" in " ".join(cells["ort-fp32"]["notes"])
    cell = cells["ort-int8-dynamic"]
    assert cell["status"] == "failed" and "not shown faster than fp32" in cell["reason"]
    refused = [a["speed"] for a in cell["attempts"] if (a["speed"] or {}).get("verdict")]
    assert refused and all(s["verdict"] in ("not faster", "undecided") and s["speedup"] < 1.0
                           and s["source"] == "estimate" for s in refused)
    # the row, the gate and the reason speak of one bundle: the fastest accurate one
    best = max(refused, key=lambda s: s["speedup"])
    assert cell["speed"] == best and f"{best['speedup']:.2f}×" in cell["reason"]
    gate = next(g for g in cell["gates"] if g["name"] == "speedup")
    assert gate["ok"] is False and gate["value"] == best["speedup"]
    assert not (out / "digits_cnn" / "rpi4" / "ort-int8-dynamic.tar.gz").exists()


def test_speedup_is_reported_and_gate_can_be_lowered(tmp_path):
    out = tmp_path / "dist"
    r = run_cli("build", SAMPLES / "digits_cnn.onnx", "--profile", "rpi4", "--target", "ort",
                "--precision", "fp32,fp16", *DIGITS, "--runs", "20", "-o", out)
    assert r.returncode == 0, r.stderr  # fp16's default gate reports only
    fp16 = cells_in(out, "digits_cnn", profile=False)["ort-fp16"]
    speed = fp16["speed"]
    # reported, not gated: the ratio of fp32's p50 to fp16's, with its interval and source
    assert speed["min_speedup"] == 0.0 and speed["verdict"] == "reported"
    assert speed["low"] <= speed["speedup"] <= speed["high"]
    assert 0.05 < speed["speedup"] < 20  # a ratio of two real timings, not a placeholder
    assert fp16["status"] == "ok"  # shipped whatever its ratio: the gate only reports
    row = next(ln for ln in (out / "digits_cnn" / "report.md").read_text().splitlines()
               if "| fp16 " in ln)
    mark = {"estimate": "est", "host": "host"}[speed["source"]]
    assert f"{speed['speedup']:.2f}× {mark}" in row


def test_accuracy_aware_int8_leaves_the_planted_layer_in_float(tmp_path):
    out = tmp_path / "dist"
    r = run_cli("build", SAMPLES / "outlier_digits.onnx", "--profile", "x86-64", "--target",
                "ort,openvino", "--precision", "int8", *MOBILENET, "--runs", "10", "-o", out,
                *NO_SPEED_GATE)
    assert r.returncode == 0, r.stderr
    cells = cells_in(out, "outlier_digits", profile=False)
    for name in ("ort-int8", "openvino-int8"):
        cell = cells[name]
        logits = cell["accuracy"]["outputs"]["logits"]
        assert cell["status"] == "ok" and logits["top1_drop_points"] <= 1.0
    ort = cells["ort-int8"]
    assert "/planted/Conv" in " ".join(ort["notes"])  # left in float by the search
    first = ort["attempts"][0]
    assert first["strategy"] == "qdq-all" and first["outcome"] == "accepted"
    ov = cells["openvino-int8"]
    plain, controlled = ov["attempts"][:2]
    assert plain["strategy"] == "nncf" and plain["outcome"] == "rejected"
    assert plain["accuracy"]["logits"]["cosine"] < 0.5  # plain int8 misses by far
    assert controlled["strategy"] == "nncf-accuracy-control"
    assert controlled["outcome"] == "accepted"


def test_debug_accuracy_ranks_the_planted_layer_first(tmp_path):
    r = run_cli("debug-accuracy", SAMPLES / "outlier_digits.onnx", "--calib",
                SAMPLES / "mobilenet_digits_calib.npz", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    first = result["ranking"][0]
    assert first["node"] == "/planted/Conv" and first["op"] == "Conv"
    assert first["error"] > 10 * result["ranking"][2]["error"]
    assert "logits.cosine" in result["end_to_end"]
    r = run_cli("debug-accuracy", SAMPLES / "outlier_digits.onnx", "--calib",
                SAMPLES / "mobilenet_digits_calib.npz", "--top", "3")
    rows = [ln for ln in r.stdout.splitlines() if ln.startswith("│ ")]
    assert r.returncode == 0 and len(rows) == 3 and "/planted/Conv" in rows[0]


def test_precision_auto_marks_the_fastest_bundle(tmp_path):
    out = tmp_path / "dist"
    r = run_cli("build", SAMPLES / "digits_cnn.onnx", "--profile", "rpi4", "--target", "ort",
                "--precision", "auto", *DIGITS, "--runs", "20", "-o", out)
    assert r.returncode == 0, r.stderr  # losers of auto do not fail the build
    cells = cells_in(out, "digits_cnn", profile=False)
    assert set(cells) == {"ort-fp32", "ort-fp16", "ort-int8-dynamic", "ort-int8"}
    chosen = [c for c in cells.values() if c["chosen"]]
    assert len(chosen) == 1 and chosen[0]["chosen"].startswith("fastest within budget")
    assert all(c["optional"] for c in cells.values() if not c["chosen"])
    assert "← auto" in r.stderr


def test_speed_gate_in_profiles(tmp_path):
    src = (ROOT / "targets" / "x86-64.toml").read_text()
    path = tmp_path / "p.toml"
    path.write_text(src + "\n[speed.int8]\nmin_speedup = 1.5\n")
    profile = load_profile(path)
    assert profile.min_speedup("int8") == 1.5 and profile.min_speedup("int8-dynamic") == 1.0
    assert profile.min_speedup("fp16") == 0.0 and profile.min_speedup("fp32") is None
    path.write_text(src + "\n[speed.fp32]\nmin_speedup = 2\n")
    with pytest.raises(ProfileError, match=r"\[speed.fp32\] is not a precision compared"):
        load_profile(path)


def test_int8_of_a_dense_map_meets_a_map_budget(tmp_path):
    # a steep probability map (a text detector's): int8 flips a few edge pixels, which makes
    # the max relative error ~0.4-0.9 (the plain int8 budget is 0.25) while the map agrees
    from tests.conftest import NO_ESTIMATE
    from tests.helpers import models

    model = models.probability_map(tmp_path / "detect.onnx")
    data = models.blob_images(tmp_path / "blobs.npz")
    out = tmp_path / "dist"
    r = run_cli("build", model, "--data", data, "--target", "ort,openvino", "--precision",
                "int8", "--runs", "3", "-o", out, *NO_SPEED_GATE, *NO_ESTIMATE)
    assert r.returncode == 0, r.stderr
    cells = cells_in(out, "detect", profile=False)
    plain = DEFAULT_BUDGETS["int8"].max_rel_error
    for target in ("ort", "openvino"):
        cell = cells[f"{target}-int8"]
        assert cell["status"] == "ok", cell["reason"]
        m = cell["accuracy"]["outputs"]["prob_map"]
        assert m["kind"] == "map" and m["kind_source"].startswith("detected: a one-channel map")
        assert m["rel_error"] > plain  # the plain budget would reject this bundle
        assert m["map_iou"] >= 0.9 and m["floor_rel_error"] <= 0.1 and m["max_abs"] > 0
        assert {g["name"] for g in cell["gates"] if g["name"].startswith("prob_map")} >= {
            "prob_map.map_iou", "prob_map.floor_rel_error"}
        manifest = json.loads((out / "detect" / "x86-64" / f"{target}-int8" /
                               "manifest.json").read_text())
        assert manifest["selftest"]["kinds"] == {"prob_map": "map"}  # the device checks alike
    assert "IoU 0." in (out / "detect" / "report.md").read_text()
