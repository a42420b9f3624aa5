"""Weight-only int4 (``--precision int4-weights``): ORT MatMulNBits and NNCF INT4_SYM on a small
encoder whose bytes are MatMul weights, verified and gated like every precision; the
runtimes without an int4 format skip the cell with their reason."""

from __future__ import annotations

import json

from tests.conftest import NO_ESTIMATE, run_cli, selftest_extracted
from tests.helpers.models import encoder_mlp


def test_int4_weights_verify_and_shrink_the_bundle_on_ort_and_openvino(tmp_path):
    model = encoder_mlp(tmp_path / "encoder.onnx")
    out = tmp_path / "dist"
    r = run_cli("build", model, "--profile", "x86-64", "--target", "ort,openvino,tflite",
                "--precision", "int4-weights", "--runs", "5", "-o", out, *NO_ESTIMATE)
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "encoder" / "report.json").read_text())
    cells = {(c["target"], c["precision"]): c for c in report["cells"]}
    for target in ("ort", "openvino"):
        cell, fp32 = cells[(target, "int4-weights")], cells[(target, "fp32")]
        assert cell["status"] == "ok", cell["reason"]
        assert cell["accuracy"]["outputs"]["embedding"]["cosine"] >= 0.99
        assert cell["accuracy"]["budget"]["min_cosine"] == 0.99  # int4's own budget
        assert cell["size"] < 0.35 * fp32["size"]  # 4-bit weights, plus their scales
        assert cell["speed"]["verdict"] == "reported"  # for size and memory, not speed
    ort = out / "encoder" / "x86-64" / "ort-int4-weights"
    assert "MatMulNBits" in (ort / "required_operators.config").read_text()
    xml = (out / "encoder" / "x86-64" / "openvino-int4-weights" / "model.xml").read_text()
    assert 'element_type="i4"' in xml
    skipped = cells[("tflite", "int4-weights")]
    assert skipped["status"] == "skipped" and "ai-edge-quantizer" in skipped["reason"]
    r = selftest_extracted(out / "encoder" / "x86-64" / "ort-int4-weights.tar.gz",
                           tmp_path / "device", "onnxruntime", ("openvino", "ai_edge_litert"))
    assert r.returncode == 0 and "selftest passed" in r.stdout, r.stdout + r.stderr


def test_int4_weights_without_a_matmul_weight_fails_its_cell_saying_so(tmp_path, samples):
    out = tmp_path / "dist"
    r = run_cli("build", samples / "digits_cnn.onnx", "--profile", "x86-64", "--target", "ort",
                "--precision", "int4-weights", "--runs", "5", "-o", out, *NO_ESTIMATE)
    assert r.returncode == 1, r.stderr
    cell = {c["precision"]: c for c in json.loads(
        (out / "digits_cnn" / "report.json").read_text())["cells"]}["int4-weights"]
    assert cell["status"] == "failed"
    assert "no MatMul with a constant weight" in cell["reason"]
