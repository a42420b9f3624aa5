"""Models shaped like real edge models: recurrent state inputs that are not batched on axis 0,
time-major outputs, control flow on a scalar input, token ids into small embedding tables,
integer and all-zero outputs, pre-quantized weights, old opsets."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import make_matmul_model, run_cli, selftest_extracted
from tests.helpers import models
from tests.helpers.reports import read_report

ALL = "ort,openvino,tflite"


def _build(model, out, *args):
    return run_cli("build", model, "--profile", "x86-64", "--precision", "fp32", "--runs", "5",
                   "-o", out, *args)



def _steps(report):
    """The preparation steps by name (the first record of a step that runs twice)."""
    found = {}
    for step in report["stages"][1]["steps"]:
        found.setdefault(step["step"], step)
    return found


def _statuses(report):
    return {c["target"]: (c["status"], c["reason"]) for c in report["cells"]}


@pytest.mark.parametrize("with_data", [True, False], ids=["npz", "synthetic"])
def test_recurrent_state_input_builds_on_every_target(tmp_path, with_data):
    model = models.streaming_gru(tmp_path / "gru.onnx")
    args = ("--data", models.streaming_data(tmp_path / "gru.npz")) if with_data else ()
    out = tmp_path / "dist"
    r = _build(model, out, "--target", ALL, *args)
    assert r.returncode == 0, r.stderr
    report = read_report(out, "gru")
    assert _statuses(report) == {t: ("ok", None) for t in ALL.split(",")}
    source = report["data"]["eval"]["source"]
    if with_data:
        assert report["data"]["eval"]["samples"] == 24  # one sample per invocation, not per row
    else:
        assert "state zeros (a recurrent state)" in source
    for cell in report["cells"]:
        outputs = cell["accuracy"]["outputs"]
        assert outputs["new_state"]["cosine"] > 0.9999 and outputs["sequence"]["cosine"] > 0.9999
    # the time-major output is stacked per sample in the golden data; the selftest agrees
    archive = out / "gru" / "x86-64" / "tflite-fp32.tar.gz"
    with tarfile.open(archive) as tar:
        golden = np.load(tar.extractfile("tflite-fp32/golden/outputs.npz"))
        assert golden["sequence"].shape == (8, models.T, 1, models.H)
        assert golden["new_state"].shape == (8, 2, 1, models.H)
    r = selftest_extracted(archive, tmp_path / "x", "ai_edge_litert", ("onnxruntime", "openvino"))
    assert r.returncode == 0, r.stdout + r.stderr


def test_state_data_in_the_batch_stacked_form_is_refused_clearly(tmp_path):
    model = models.streaming_gru(tmp_path / "gru.onnx")
    data = tmp_path / "bad.npz"
    np.savez(data, frames=np.zeros((4, models.T), np.float32),  # fine: [N*1, T]
             state=np.zeros((4, 1, models.H), np.float32))  # a state sliced per row
    out = tmp_path / "dist"
    r = _build(model, out, "--target", "ort", "--data", data)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "the inputs hold different numbers of samples: frames 4, state 2; every input " \
           "needs one entry per sample" in r.stderr


def test_branch_on_a_scalar_input_needs_fix_input_then_converts_everywhere(tmp_path):
    model = models.branching_lstm(tmp_path / "branch.onnx")
    out = tmp_path / "dist"
    r = _build(model, out, "--target", ALL)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "--fix-input sample_rate=VALUE" in r.stderr and not out.exists()
    r = _build(model, out, "--target", ALL, "--fix-input", "sample_rate=16000")
    assert r.returncode == 0, r.stderr
    report = read_report(out, "branch")
    assert _statuses(report) == {t: ("ok", None) for t in ALL.split(",")}
    steps = _steps(report)
    # the If the fixed input decides folds with the fixing (its other branch may not even
    # pass shape inference at the static input shapes)
    assert steps["fix-inputs"]["changes"] == [
        "input 'sample_rate' fixed to 16000",
        "If 'y' folded to its then branch (condition constant)"]
    manifest = json.loads((out / "branch" / "x86-64" / "openvino-fp32" / "manifest.json")
                          .read_text())
    assert [i["name"] for i in manifest["inputs"]] == ["x"]  # the fixed input left the bundle
    tflite = next(c for c in report["cells"] if c["target"] == "tflite")
    accepted = next(a for a in tflite["attempts"] if a["outcome"] == "accepted")
    assert accepted["strategy"].endswith("+unroll-rnn")  # the converters' own LSTM is wrong
    assert any(a["outcome"] == "rejected" and a["accuracy"] and
               a["accuracy"]["y"]["cosine"] < 0.9 for a in tflite["attempts"])


def test_a_failed_branching_model_names_fix_input(tmp_path):
    model = models.branching_lstm(tmp_path / "branch.onnx")
    data = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(data, x=rng.standard_normal((6, 1, models.T)).astype(np.float32),
             sample_rate=np.array([16000, 8000] * 3, np.int64))
    out = tmp_path / "dist"
    r = _build(model, out, "--target", "ort,tflite", "--data", data,
               "--strategy", "onnx2tf-2.6.9")
    assert r.returncode == 1, r.stderr
    cells = _statuses(read_report(out, "branch"))
    assert cells["ort"] == ("ok", None)
    assert cells["tflite"][0] == "failed"
    assert "--fix-input sample_rate=VALUE freezes them" in cells["tflite"][1]


def test_token_ids_stay_within_their_embedding_tables(tmp_path):
    model = models.token_embedding(tmp_path / "tokens.onnx", vocab=50)
    out = tmp_path / "dist"
    r = _build(model, out, "--target", "ort,openvino")
    assert r.returncode == 0, r.stderr
    report = read_report(out, "tokens")
    assert "input_ids in 0..49, token_type_ids in 0..1, attention_mask in 0..1" in \
        report["data"]["eval"]["source"]
    assert _statuses(report) == {"ort": ("ok", None), "openvino": ("ok", None)}


def _int_and_zero_outputs(path):
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3))
                                .astype(np.float32), "W")
    zero = numpy_helper.from_array(np.zeros((1, 4), np.float32), "Z")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"]),
         helper.make_node("Shape", ["x"], ["shape"]),
         helper.make_node("Mul", ["x", "Z"], ["zeros"])],
        "outs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3]),
         helper.make_tensor_value_info("shape", TensorProto.INT64, [2]),
         helper.make_tensor_value_info("zeros", TensorProto.FLOAT, [1, 4])],
        initializer=[w, zero])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_integer_and_all_zero_outputs_compare_without_nan(tmp_path):
    model = _int_and_zero_outputs(tmp_path / "outs.onnx")
    out = tmp_path / "dist"
    r = _build(model, out, "--target", "ort,openvino")
    assert r.returncode == 0, r.stderr
    for cell in read_report(out, "outs")["cells"]:
        outputs = cell["accuracy"]["outputs"]
        assert cell["status"] == "ok", cell["reason"]
        assert outputs["shape"]["match"] == 1.0 and outputs["shape"]["mismatches"] == 0
        assert outputs["zeros"]["cosine"] == 1.0 and outputs["zeros"]["max_abs"] == 0.0


def _prequantized(path, n=512):
    """A MatMul whose int8 weights are dequantized in the graph (Cast · Mul)."""
    rng = np.random.default_rng(0)
    q = numpy_helper.from_array(rng.integers(-127, 128, (n, n)).astype(np.int8), "Wq")
    scale = numpy_helper.from_array(np.array(0.01, np.float32), "scale")
    graph = helper.make_graph(
        [helper.make_node("Cast", ["Wq"], ["Wf"], to=TensorProto.FLOAT),
         helper.make_node("Mul", ["Wf", "scale"], ["W"]),
         helper.make_node("MatMul", ["x", "W"], ["y"])],
        "prequantized", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])], initializer=[q, scale])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_preparation_keeps_pre_quantized_weights_quantized(tmp_path):
    model = _prequantized(tmp_path / "preq.onnx")
    out = tmp_path / "dist"
    r = _build(model, out, "--target", "ort")
    assert r.returncode == 0, r.stderr
    report = read_report(out, "preq")
    steps = _steps(report)
    assert steps["simplify:onnxsim"]["status"] == "rejected"
    assert "would grow the model from 0.3 MiB to 1.0 MiB" in steps["simplify:onnxsim"]["reason"]
    assert report["stages"][1]["size_after"] < 1.2 * model.stat().st_size
    assert report["cells"][0]["size"] < 1.5 * model.stat().st_size


def test_old_opset_is_upgraded_and_recorded(tmp_path):
    path = make_matmul_model(tmp_path / "old.onnx")
    model = onnx.load(str(path))
    model.opset_import[0].version = 9
    onnx.save(model, str(path))
    out = tmp_path / "dist"
    r = _build(path, out, "--target", "ort,openvino")
    assert r.returncode == 0, r.stderr
    steps = _steps(read_report(out, "old"))
    assert steps["upgrade-opset"]["changes"] == ["opset 9 upgraded to 13"]


def test_if_condition_of_shape_1x1_becomes_a_scalar(tmp_path):
    then = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["a"])], "then", [],
                             [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 4])])
    other = helper.make_graph([helper.make_node("Neg", ["x"], ["b"])], "else", [],
                              [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 4])])
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x", "axis"], ["s"], keepdims=1),
         helper.make_node("Greater", ["s", "zero"], ["cond"]),  # bool [1, 1]
         helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=other)],
        "if11", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        initializer=[numpy_helper.from_array(np.array([1], np.int64), "axis"),
                     numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
                     numpy_helper.from_array(np.array(2.0, np.float32), "two")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "if11.onnx"
    onnx.save(model, str(path))
    out = tmp_path / "dist"
    r = _build(path, out, "--target", "ort,openvino")
    assert r.returncode == 0, r.stderr
    report = read_report(out, "if11")
    steps = _steps(report)
    assert steps["if-conditions"]["changes"][0].endswith("condition [1, 1] made a scalar")
    assert _statuses(report)["openvino"] == ("ok", None)
