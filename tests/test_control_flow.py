"""Models with control flow, built end to end: inputs fixed with --fix-input, Ifs on
constants and on static shapes, folded before the converters see them."""

from __future__ import annotations

import numpy as np
import onnxruntime

from tests.conftest import NO_ESTIMATE, run_cli
from tests.helpers import models
from tests.helpers.reports import read_report

TARGETS = ("--target", "ort,openvino,tflite", "--precision", "fp32", "--runs", "3")



def test_a_fixed_sample_rate_builds_everywhere_with_the_reference_intact(tmp_path):
    # nested If with an LSTM in each branch and a scalar int64 sample rate: with the length
    # static, the 8 kHz branch fails shape inference in ONNX Runtime, so the reference runs
    # the model as given, and fixing sr folds that branch away before anything else loads it
    model = models.two_rate_vad(tmp_path / "vad.onnx")
    out = tmp_path / "dist"
    # (tflite: onnx2tf 2.6.9 on the unrolled LSTM, the fast strategy that is right here)
    r = run_cli("build", model, "--input-shape", "x=1,512", "--fix-input", "sr=16000",
                *TARGETS, "--strategy", "2.6.9 flatbuffer_direct +unroll", "-o", out,
                *NO_ESTIMATE)
    assert r.returncode == 0, r.stderr
    report = read_report(out, "vad")
    for cell in report["cells"]:
        assert cell["status"] == "ok", (cell["key"], cell["reason"])
        assert min(m["cosine"] for m in cell["accuracy"]["outputs"].values()) > 0.9999
    prepare = next(s for s in report["stages"] if s["stage"] == "prepare")
    fixing = prepare["steps"][0]
    assert fixing["step"] == "fix-inputs" and fixing["check"]["rel_error"] == 0.0
    assert "If 'rate' folded to its then branch (condition constant)" in fixing["changes"]
    # the reference: the user's model itself on ONNX Runtime, at 16 kHz
    bundle = out / "vad" / "x86-64" / "tflite-fp32"
    with np.load(bundle / "golden" / "inputs.npz") as i, \
            np.load(bundle / "golden" / "outputs.npz") as o:
        session = onnxruntime.InferenceSession(str(model))
        for n in range(len(i["x"])):
            want = session.run(None, {"x": i["x"][n], "state": i["state"][n],
                                      "sr": np.array(16000, np.int64)})
            np.testing.assert_array_equal(o["output"][n], want[0])
            np.testing.assert_array_equal(o["new_state"][n], want[1])


def test_an_if_on_a_shape_comparison_folds_for_tflite(tmp_path):
    out = tmp_path / "dist"
    r = run_cli("build", models.length_switch(tmp_path / "switch.onnx"), "--input-shape",
                "x=1,32,8", "--target", "tflite", "--precision", "fp32", "--runs", "3", "-o",
                out, *NO_ESTIMATE)
    assert r.returncode == 0, r.stderr
    report = read_report(out, "switch")
    (cell,) = report["cells"]
    assert cell["status"] == "ok", cell["reason"]
    steps = next(s for s in report["stages"] if s["stage"] == "prepare")["steps"]
    fold = next(s for s in steps if s["step"] == "fold-ifs" and s["status"] == "ok")
    assert fold["changes"] == ["If 'pool' folded to its then branch (condition constant once "
                               "the input shapes are static)"]


def test_a_com_microsoft_lstm_reaches_tflite_as_a_standard_lstm(tmp_path):
    # a pre-quantized DynamicQuantizeLSTM: onnx2tf has no such op; the standard-ops copy
    # (int8 weights dequantized, a plain LSTM) differs from the source as int8 rounding does
    # and is held to the int8 budget, as every bundle of an already-quantized model is
    model = models.quantized_lstm(tmp_path / "qlstm.onnx")
    out = tmp_path / "dist"
    r = run_cli("build", model, "--target", "tflite", "--precision", "fp32", "--runs", "3",
                "--strategy", "2.6.9 flatbuffer_direct +unroll", "-o", out, *NO_ESTIMATE)
    assert r.returncode == 0, r.stderr
    report = read_report(out, "qlstm")
    (cell,) = report["cells"]
    assert cell["status"] == "ok", cell["reason"]
    accepted = next(a for a in cell["attempts"] if a["outcome"] == "accepted")
    assert accepted["model"] == "standard"
    assert cell["accuracy"]["budget"]["min_cosine"] == 0.98  # the int8 budget
    steps = next(s for s in report["stages"] if s["stage"] == "prepare")["steps"]
    standard = next(s for s in steps if s["step"] == "standard-ops")
    assert standard["status"] == "ok" and standard["changes"][0].startswith(
        "DynamicQuantizeLSTM")
    assert any("already int8-quantized" in n for n in report["notes"])
