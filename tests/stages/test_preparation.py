"""Graph preparation: every step checked against the imported model, kept only if it agrees."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgepack.data import load_dataset
from edgepack.importers.onnx import import_onnx
from edgepack.stages import graph, preparation, simplify
from edgepack.stages.rewrites.unroll_rnn import unroll_rnn
from tests.helpers import models


def _prepare(samples, tmp_path):
    ref = import_onnx(samples / "mobilenet_digits.onnx", tmp_path / "ref.onnx")
    feeds = list(load_dataset(samples / "mobilenet_digits.npz", ref.inputs, "--data")
                 .head(4).feeds())
    paths = [tmp_path / f"{n}.onnx" for n in ("prepared", "minimal", "standard")]
    return ref, paths, preparation.prepare_model(ref.path, *paths, {}, feeds)


def _steps(record):
    return {s["step"]: s for s in record["steps"]}


def test_simplify_sample_is_accepted(samples, tmp_path):
    _, (prepared, minimal, _), record = _prepare(samples, tmp_path)
    step = _steps(record)["simplify:onnxsim"]
    assert step["status"] == "ok" and step["tool"].startswith("onnxsim")
    assert step["check"]["rel_error"] <= preparation.MAX_REL_ERROR
    assert record["nodes_after"] < record["nodes_before"]
    assert prepared.is_file() and minimal.is_file()


def test_wrong_or_failing_simplifiers_keep_the_original(samples, tmp_path, monkeypatch):
    def breaks(model):
        init = next(i for i in model.graph.initializer if len(i.dims) == 4)
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(2),
                                              init.name))
        return model

    def crashes(model):
        raise RuntimeError("simplifier exploded")

    monkeypatch.setattr(simplify, "SIMPLIFIERS", {"onnxsim": breaks, "onnxslim": crashes})
    ref, (prepared, _, _), record = _prepare(samples, tmp_path)
    steps = _steps(record)
    assert steps["simplify:onnxsim"]["status"] == "rejected"
    assert "output differs" in steps["simplify:onnxsim"]["reason"]
    assert steps["simplify:onnxslim"] == {"step": "simplify:onnxslim", "tool": steps[
        "simplify:onnxslim"]["tool"], "status": "failed",
        "reason": "RuntimeError: simplifier exploded"}
    assert not any(st["status"] == "ok" for name, st in steps.items()
                   if name.startswith("simplify:"))
    weights = lambda path: {i.name: numpy_helper.to_array(i)  # noqa: E731
                            for i in onnx.load(str(path)).graph.initializer if len(i.dims) == 4}
    original, kept = weights(ref.path), weights(prepared)
    assert original and all(np.array_equal(original[k], kept[k]) for k in original)


def test_a_simplifier_without_metadata_still_runs(samples, tmp_path, monkeypatch):
    import importlib.metadata

    real = importlib.metadata.version

    def version(name):
        if name == "onnxsim":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    _, _, record = _prepare(samples, tmp_path)
    step = _steps(record)["simplify:onnxsim"]
    assert step["status"] == "ok" and step["tool"] == "onnxsim"


def _rnn(kind, direction, lbr=0, steps=5, batch=2, size=3, hidden=4, states=True, bias=True):
    rng = np.random.default_rng(0)
    gates, dirs = graph.GATES[kind], 2 if direction == "bidirectional" else 1
    inits = [numpy_helper.from_array(rng.standard_normal((dirs, gates * hidden, size))
                                     .astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal((dirs, gates * hidden, hidden))
                                     .astype(np.float32), "R")]
    names = ["x", "W", "R", "B" if bias else "", ""]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal((dirs, 2 * gates * hidden))
                                             .astype(np.float32), "B"))
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [steps, batch, size])]
    for state in (["h0", "c0"] if kind == "LSTM" else ["h0"]) if states else []:
        names.append(state)
        inputs.append(helper.make_tensor_value_info(state, TensorProto.FLOAT,
                                                    [dirs, batch, hidden]))
    outs = ["Y", "Yh"] + (["Yc"] if kind == "LSTM" else [])
    attrs = {"hidden_size": hidden, "direction": direction}
    if kind == "GRU":
        attrs["linear_before_reset"] = lbr
    node = helper.make_node(kind, names, outs, **attrs)
    shapes = {"Y": [steps, dirs, batch, hidden], "Yh": [dirs, batch, hidden],
              "Yc": [dirs, batch, hidden]}
    g = helper.make_graph([node], "rnn", inputs, [
        helper.make_tensor_value_info(o, TensorProto.FLOAT, shapes[o]) for o in outs],
        initializer=inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, inputs


@pytest.mark.parametrize("kind, direction, lbr, states, bias", [
    *[(k, d, 0, True, True) for k in ("LSTM", "GRU", "RNN")
      for d in ("forward", "reverse", "bidirectional")],
    ("GRU", "forward", 1, True, True), ("GRU", "bidirectional", 1, False, False),
    ("LSTM", "forward", 0, False, False)])
def test_unrolled_rnn_computes_the_same(kind, direction, lbr, states, bias):
    model, inputs = _rnn(kind, direction, lbr, states=states, bias=bias)
    unrolled, changes = unroll_rnn(model)
    assert changes and kind not in {n.op_type for n in unrolled.graph.node}
    onnx.checker.check_model(unrolled)
    rng = np.random.default_rng(1)
    feeds = {i.name: rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim])
             .astype(np.float32) for i in inputs}
    run = lambda m: onnxruntime.InferenceSession(  # noqa: E731
        m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    for a, b in zip(run(model), run(unrolled), strict=True):
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-5


def test_fold_constant_ifs_and_branch_inputs(tmp_path):
    model = onnx.load(str(models.branching_lstm(tmp_path / "b.onnx")))
    assert graph.branch_inputs(model) == ["sample_rate"]
    fixed, changes = graph.fix_inputs(model, {"sample_rate": np.array(8000, np.int64)})
    assert changes == ["input 'sample_rate' fixed to 8000"]
    folded, changes = graph.fold_constant_ifs(fixed)
    assert changes == ["If 'y' folded to its else branch (condition constant)"]
    assert "If" not in {n.op_type for n in folded.graph.node}
    onnx.checker.check_model(folded)
    x = np.ones((1, models.T), np.float32)
    a = onnxruntime.InferenceSession(model.SerializeToString()).run(
        None, {"x": x, "sample_rate": np.array(8000, np.int64)})[0]
    b = onnxruntime.InferenceSession(folded.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_integer_inputs_and_states_are_recognised(tmp_path):
    tokens = onnx.load(str(models.token_embedding(tmp_path / "t.onnx", vocab=30)))
    assert graph.integer_input_range(tokens, "input_ids") == (0, 29)
    assert graph.integer_input_range(tokens, "token_type_ids") == (0, 1)
    assert graph.integer_input_range(tokens, "attention_mask") == (0, 1)
    branching = onnx.load(str(models.branching_lstm(tmp_path / "b.onnx")))
    assert graph.integer_input_range(branching, "sample_rate") is None
    gru = onnx.load(str(models.streaming_gru(tmp_path / "g.onnx")))
    assert graph.is_state_input(gru, "state") and not graph.is_state_input(gru, "frames")


def test_dynamic_quantize_lstm_becomes_a_standard_lstm(tmp_path):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model, inputs = _rnn("LSTM", "forward", states=False)
    src, dst = tmp_path / "lstm.onnx", tmp_path / "lstm_q.onnx"
    onnx.save(model, str(src))
    quantize_dynamic(src, dst, op_types_to_quantize=["LSTM"], weight_type=QuantType.QInt8)
    quantized = onnx.load(str(dst))
    assert any(n.op_type == "DynamicQuantizeLSTM" for n in quantized.graph.node)
    standard, changes = graph.standard_ops(quantized)
    assert changes and {n.domain for n in standard.graph.node} <= {"", "ai.onnx"}
    feeds = {"x": np.random.default_rng(2).standard_normal((5, 2, 3)).astype(np.float32)}
    run = lambda m: onnxruntime.InferenceSession(  # noqa: E731
        m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    # the standard LSTM computes the float model with the int8 weights dequantized (ORT's
    # DynamicQuantizeLSTM also quantizes activations, per CPU kernel: not the reference here)
    for a, b in zip(run(model), run(standard), strict=True):
        assert a.shape == b.shape and np.abs(a - b).max() < 0.05  # weight rounding only


def _static(model: onnx.ModelProto, name: str, shape: list[int]) -> onnx.ModelProto:
    """``model`` with input ``name`` declared with the static ``shape``."""
    value = next(i for i in model.graph.input if i.name == name)
    dims = value.type.tensor_type.shape.dim
    del dims[:]
    for size in shape:
        dims.add().dim_value = size
    return model


def test_a_fixed_input_folds_the_branches_static_shapes_would_break(tmp_path):
    # the 8 kHz branch feeds its LSTM rank 4 at 512 samples: ONNX Runtime refuses the model
    # once the length is static, although that branch never runs at 16 kHz
    model = _static(onnx.load(str(models.two_rate_vad(tmp_path / "vad.onnx"))), "x", [1, 512])
    with pytest.raises(Exception, match="First input tensor must have rank 3"):
        onnxruntime.InferenceSession(model.SerializeToString())
    fixed, _ = graph.fix_inputs(model, {"sr": np.array(16000, np.int64)})
    folded, changes = graph.fold_constant_ifs(fixed)
    assert changes == [
        "If 'rate' folded to its then branch (condition constant)",
        "If 'state_reset' folded to its then branch (condition constant once the input "
        "shapes are static)",
        "If 'rate/k16_squeeze' folded to its then branch (condition constant once the input "
        "shapes are static)"]
    assert "If" not in {n.op_type for n in folded.graph.node}
    onnx.checker.check_model(folded, full_check=True)
    feeds = {"x": np.random.default_rng(0).standard_normal((1, 512)).astype(np.float32),
             "state": np.full((1, 1, models.H), 0.5, np.float32)}
    original = onnxruntime.InferenceSession(str(tmp_path / "vad.onnx")).run(
        None, {**feeds, "sr": np.array(16000, np.int64)})
    got = onnxruntime.InferenceSession(folded.SerializeToString()).run(None, feeds)
    for a, b in zip(original, got, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_an_inlined_branch_keeps_what_its_nested_branches_refer_to():
    # the then branch defines 'v'; its nested If's branches read 'v' from the outer scope
    f = TensorProto.FLOAT
    inner_then = helper.make_graph([helper.make_node("Neg", ["v"], ["a"])], "it", [],
                                   [helper.make_tensor_value_info("a", f, [2])])
    inner_else = helper.make_graph([helper.make_node("Identity", ["v"], ["b"])], "ie", [],
                                   [helper.make_tensor_value_info("b", f, [2])])
    then = helper.make_graph(
        [helper.make_node("Add", ["x", "x"], ["v"]),
         helper.make_node("If", ["c2"], ["w"], then_branch=inner_then, else_branch=inner_else)],
        "then", [], [helper.make_tensor_value_info("w", f, [2])])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", f, [2])])
    g = helper.make_graph(
        [helper.make_node("If", ["c1"], ["y"], then_branch=then, else_branch=other, name="i")],
        "nested", [helper.make_tensor_value_info("x", f, [2]),
                   helper.make_tensor_value_info("c2", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", f, [2])],
        initializer=[numpy_helper.from_array(np.array(True), "c1")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    folded, changes = graph.fold_constant_ifs(model)
    assert changes == ["If 'i' folded to its then branch (condition constant)"]
    onnx.checker.check_model(folded, full_check=True)
    session = onnxruntime.InferenceSession(folded.SerializeToString())
    x = np.array([1.0, 2.0], np.float32)
    for c2, want in ((True, -2 * x), (False, 2 * x)):
        np.testing.assert_array_equal(session.run(None, {"x": x, "c2": np.array(c2)})[0], want)


def test_only_control_inputs_are_hinted(tmp_path):
    # the VAD's Ifs also read x and state, but only through their shapes
    vad = onnx.load(str(models.two_rate_vad(tmp_path / "vad.onnx")))
    assert graph.branch_inputs(vad) == ["sr"]
    # a condition on a real data tensor's values does not make it a control input
    f = TensorProto.FLOAT
    then = helper.make_graph([helper.make_node("Neg", ["x"], ["a"])], "t", [],
                             [helper.make_tensor_value_info("a", f, [1, 4])])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["b"])], "e", [],
                              [helper.make_tensor_value_info("b", f, [1, 4])])
    g = helper.make_graph(
        [helper.make_node("ReduceMax", ["x"], ["m"], keepdims=0),
         helper.make_node("Greater", ["m", "mode"], ["c0"]),
         helper.make_node("Cast", ["c0"], ["c"], to=TensorProto.BOOL),
         helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)],
        "g", [helper.make_tensor_value_info("x", f, [1, 4]),
              helper.make_tensor_value_info("mode", f, [1])],
        [helper.make_tensor_value_info("y", f, [1, 4])])
    assert graph.branch_inputs(helper.make_model(g)) == ["mode"]


def test_an_if_on_a_shape_comparison_folds_without_a_simplifier(tmp_path):
    model = _static(onnx.load(str(models.length_switch(tmp_path / "s.onnx"))), "x", [1, 32, 8])
    folded, changes = graph.fold_constant_ifs(model)
    assert changes == ["If 'pool' folded to its then branch (condition constant once the input "
                       "shapes are static)"]
    assert "If" not in {n.op_type for n in folded.graph.node}
    x = np.random.default_rng(0).standard_normal((1, 32, 8)).astype(np.float32)
    run = lambda m: onnxruntime.InferenceSession(m.SerializeToString()).run(  # noqa: E731
        None, {"x": x})[0]
    np.testing.assert_allclose(run(folded), run(model), rtol=1e-6)
