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
    assert "no MatMul with a constant 2-D weight" in cell["reason"]


def test_a_later_strategy_keeps_the_weights_int4_harms_most_in_float(tmp_path):
    """The strategies keep 0, 25% and 50% of the MatMul weights in int8, chosen by their
    int4 error (data-free): a weight with one outlier per block (int4's worst case) is the
    one kept."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from edgepack.stages.quantize import INT4_KEEP_SHARES, int4_error
    from edgepack.targets.ort import _int4_weights

    model = encoder_mlp(tmp_path / "encoder.onnx")
    proto = onnx.load(str(model))
    w2 = next(i for i in proto.graph.initializer if i.name == "w2")
    spiky = numpy_helper.to_array(w2).copy()
    spiky[::32] *= 10.0  # one large weight per block of 32 along K: coarse steps for the rest
    w2.CopyFrom(numpy_helper.from_array(spiky, "w2"))
    onnx.save(proto, str(model))
    w1 = numpy_helper.to_array(next(i for i in proto.graph.initializer if i.name == "w1"))
    assert int4_error(spiky) > 1.5 * int4_error(w1)
    assert INT4_KEEP_SHARES[0] == 0.0 and 0.5 in INT4_KEEP_SHARES
    notes = _int4_weights(model, tmp_path / "half.onnx", 0.5)
    out = onnx.load(str(tmp_path / "half.onnx"))
    bits = {n.input[1].split("_Q")[0]: onnx.helper.get_attribute_value(
        next(a for a in n.attribute if a.name == "bits"))
        for n in out.graph.node if n.op_type == "MatMulNBits"}
    assert bits == {"w1": 4, "w2": 8}, bits  # the spiky weight in int8, the other in int4
    assert "1 MatMul weight(s) with the largest int4 error stored in int8" in " ".join(notes)
    assert np.isfinite(int4_error(np.zeros((64, 8), np.float32)))  # an all-zero weight
