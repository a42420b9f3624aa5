"""ncnn for the graphs real models have: each class of graph that pnnx passed through
unconverted, converted wrong or crashed on, as a small model built here. Each is shown
failing as pnnx met it before (the ncnn lowering without the rewrites) and verifying now
(``edgepack build``, the rewrites into pnnx's forms applied), against ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgepack.profiles import load_profile
from edgepack.stages.rewrites import apply_where_they_apply, get
from edgepack.stages.simplify import run_onnx
from edgepack.targets import get_target
from edgepack.targets.base import LowerContext, Strategy
from edgepack.targets.ncnn import PNNX_FORMS, pnnx_executable
from edgepack.targets.ncnn.crash import bisect, crashed, predict
from tests.conftest import NO_ESTIMATE, run_cli
from tests.helpers.reports import cells_in

TARGET = get_target("ncnn")
I64_MAX, I64_MIN = int(np.iinfo(np.int64).max), int(np.iinfo(np.int64).min)
RNG = np.random.default_rng(0)


def _init(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def _weights(name: str, *shape) -> onnx.TensorProto:
    return _init(name, RNG.standard_normal(shape).astype(np.float32) * 0.5)


def _save(path: Path, nodes, inputs, outputs, inits, opset: int = 13) -> Path:
    """The model, its outputs' shapes filled in by shape inference (a valid ONNX file)."""
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    inferred = onnx.shape_inference.infer_shapes(model).graph
    known = {v.name: v for v in (*inferred.value_info, *inferred.output)}
    for out in model.graph.output:
        out.CopyFrom(known[out.name])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _image(name="x", shape=(1, 4, 8, 8)):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def _out(name="y"):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, None)


def _conv(x="x", out="c", channels=4):
    return helper.make_node("Conv", [x, "w", "b"], [out], kernel_shape=[1, 1]), [
        _weights("w", channels, channels, 1, 1), _weights("b", channels)]


# --------------------------------------------------------------------------- the models
def pads_model(path: Path) -> Path:
    """A Pad with its mode left implicit (as tf2onnx writes it) and one whose pads grow one
    side and cut the other, on 4 channels."""
    conv, inits = _conv()
    nodes = [conv,
             helper.make_node("Pad", ["c", "p1"], ["a"]),
             helper.make_node("Pad", ["a", "p2"], ["y"], mode="constant")]
    inits += [_init("p1", np.array([0, 1, 1, 2, 0, 2, 1, 0], np.int64)),
              _init("p2", np.array([0, 0, 1, -1, 0, 0, -2, 2], np.int64))]
    return _save(path, nodes, [_image()], [_out()], inits)


def pads_opset19_model(path: Path) -> Path:
    """Opset 19: a Pad over named axes, a wrapping Pad, and a ReduceMean with its axes as an
    input (pnnx reads them only as an attribute)."""
    conv, inits = _conv()
    nodes = [conv,
             helper.make_node("Pad", ["c", "p1", "", "ax"], ["a"], mode="constant"),
             helper.make_node("Pad", ["a", "p2"], ["b2"], mode="wrap"),
             helper.make_node("ReduceMean", ["b2", "rax"], ["y"], keepdims=1)]
    inits += [_init("p1", np.array([1, 2, 0, 1], np.int64)),
              _init("ax", np.array([2, 3], np.int64)),
              _init("p2", np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)),
              _init("rax", np.array([1], np.int64))]
    return _save(path, nodes, [_image()], [_out()], inits, opset=19)


def slices_model(path: Path) -> Path:
    """A Slice with step 2, a reversal spelled with the widest bounds, and a Slice that
    leaves its axes implicit."""
    conv, inits = _conv(channels=4)
    nodes = [conv,
             helper.make_node("Slice", ["c", "s0", "e0", "a0", "k0"], ["s"]),
             helper.make_node("Slice", ["s", "s1", "e1", "a1", "k1"], ["r"]),
             helper.make_node("Slice", ["r", "s2", "e2"], ["y"])]
    inits += [_init("s0", np.array([0], np.int64)), _init("e0", np.array([10], np.int64)),
              _init("a0", np.array([3], np.int64)), _init("k0", np.array([2], np.int64)),
              _init("s1", np.array([I64_MAX], np.int64)),
              _init("e1", np.array([I64_MIN], np.int64)),
              _init("a1", np.array([2], np.int64)), _init("k1", np.array([-1], np.int64)),
              _init("s2", np.array([0, 1], np.int64)), _init("e2", np.array([1, 3], np.int64))]
    return _save(path, nodes, [_image(shape=(1, 4, 8, 10))], [_out()], inits)


def gathers_model(path: Path) -> Path:
    """Token ids through a Cast into an embedding Gather with its axis written out, a
    2-row token-type table (pnnx's made-up ids, 7, cannot index it: it crashes), and a
    Gather of computed features at a constant list of indices."""
    nodes = [helper.make_node("Cast", ["ids"], ["ids32"], to=TensorProto.INT32),
             helper.make_node("Gather", ["table", "ids32"], ["emb"], axis=0),
             helper.make_node("Gather", ["types", "tt"], ["temb"]),
             helper.make_node("Add", ["emb", "temb"], ["sum"]),
             helper.make_node("Gather", ["sum", "pick"], ["picked"], axis=2),
             helper.make_node("MatMul", ["picked", "proj"], ["y"])]
    inits = [_weights("table", 100, 32), _weights("types", 2, 32),
             _init("pick", np.array([0, 3, 5, 6, 9, 20], np.int64)), _weights("proj", 6, 8)]
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 16])
    tt = helper.make_tensor_value_info("tt", TensorProto.INT64, [1, 16])
    return _save(path, nodes, [ids, tt], [_out()], inits)


def if_model(path: Path) -> Path:
    """An If on the input's rank (static once the shape is fixed) whose branches read a
    weight of the main graph: pnnx loses that weight and crashes."""
    then = helper.make_graph([helper.make_node("Mul", ["c", "k"], ["t"])], "then", [],
                             [_image("t")])
    other = helper.make_graph([helper.make_node("Add", ["c", "k"], ["e"])], "else", [],
                              [_image("e")])
    conv, inits = _conv()
    nodes = [conv,
             helper.make_node("Shape", ["c"], ["shape"]),
             helper.make_node("Size", ["shape"], ["rank"]),
             helper.make_node("Equal", ["rank", "four"], ["is4"]),
             helper.make_node("If", ["is4"], ["y"], then_branch=then, else_branch=other)]
    inits += [_weights("k", 1, 4, 1, 1), _init("four", np.array(4, np.int64))]
    return _save(path, nodes, [_image()], [_out()], inits)


def mask_model(path: Path) -> Path:
    """A transformer's attention mask as transformers builds it: the integer mask cast to
    bool, gathered at constant positions, combined with a constant by And (both broadcast),
    turned into an additive bias by Where, added to scores; and a mean pooling that sums
    over the tokens with ReduceSum (its axes an input) and divides by the mask's sum."""
    nodes = [helper.make_node("Cast", ["mask"], ["mb"], to=TensorProto.BOOL),
             helper.make_node("Gather", ["mb", "pos"], ["mg"], axis=1),
             helper.make_node("And", ["allowed", "mg"], ["m2"]),
             helper.make_node("Where", ["m2", "zero", "lowest"], ["bias"]),
             helper.make_node("MatMul", ["x", "wq"], ["q"]),
             helper.make_node("Transpose", ["q"], ["qt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["q", "qt"], ["scores"]),
             helper.make_node("Add", ["scores", "bias"], ["biased"]),
             helper.make_node("Softmax", ["biased"], ["attn"], axis=-1),
             helper.make_node("MatMul", ["attn", "q"], ["h"]),
             helper.make_node("Unsqueeze", ["mask", "last"], ["mu"]),
             helper.make_node("Cast", ["mu"], ["mf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["h", "mf"], ["hm"]),
             helper.make_node("ReduceSum", ["hm", "tokens"], ["s"], keepdims=0),
             helper.make_node("ReduceSum", ["mf", "tokens"], ["n"], keepdims=0),
             helper.make_node("Div", ["s", "n"], ["y"])]
    inits = [_init("pos", np.arange(16, dtype=np.int64).reshape(1, 16)),
             _init("allowed", np.ones((1, 16, 1), bool)),
             _init("zero", np.array(0.0, np.float32)),
             _init("lowest", np.array(np.finfo(np.float32).min, np.float32)),
             _weights("wq", 8, 8), _init("last", np.array([-1], np.int64)),
             _init("tokens", np.array([1], np.int64))]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 8])
    mask = helper.make_tensor_value_info("mask", TensorProto.INT64, [1, 16])
    return _save(path, nodes, [x, mask], [_out()], inits)


MODELS = {"pads": pads_model, "pads_opset19": pads_opset19_model, "slices": slices_model,
          "gathers": gathers_model, "ifs": if_model, "masks": mask_model}
MASKED = {"mask": lambda n: np.concatenate([np.ones((n, 1, 10), np.int64),
                                           np.zeros((n, 1, 6), np.int64)], axis=2)}


def _inputs(model: Path) -> list[dict]:
    from edgepack.importers.onnx import io_specs

    return io_specs(model)[0]


def _lower_as_before(model: Path, tmp_path: Path) -> str:
    """The ncnn lowering as it ran before the rewrites (pnnx on the model as it is):
    the error it stopped with."""
    out = tmp_path / "raw"
    out.mkdir()
    ctx = LowerContext(strategy=Strategy("pnnx as it was"), timeout=120)
    with pytest.raises(RuntimeError) as failed:
        TARGET.lower(model, "fp32", load_profile("x86-64"), None, out, ctx)
    return str(failed.value)


@pytest.mark.parametrize("name", MODELS)
def test_each_class_failed_before_and_verifies_now(name, tmp_path):
    model = MODELS[name](tmp_path / f"{name}.onnx")
    before = _lower_as_before(model, tmp_path)
    assert "pnnx" in before and "\n" not in before, before
    data = {i["name"]: (MASKED[i["name"]](8) if i["name"] in MASKED else
                        RNG.integers(0, 2 if i["name"] == "tt" else 100, [8, *i["shape"]])
                        if i["dtype"] == "int64" else
                        RNG.standard_normal([8, *i["shape"]]).astype(np.float32))
            for i in _inputs(model)}
    np.savez(tmp_path / "data.npz", **data)
    r = run_cli("build", model, "--profile", "x86-64", "--target", "ncnn", "--precision",
                "fp32", "--data", tmp_path / "data.npz", "--runs", "3", "-o",
                tmp_path / "out", *NO_ESTIMATE)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    cell = cells_in(tmp_path / "out", name)["x86-64/ncnn-fp32"]
    assert cell["status"] == "ok", cell["reason"]
    (accepted,) = [a for a in cell["attempts"] if a["outcome"] == "accepted"]
    assert accepted["strategy"].startswith("pnnx-")
    for m in cell["accuracy"]["outputs"].values():
        assert m["cosine"] > 0.99999 and m["rel_error"] < 1e-4
    if name != "ifs":  # (the graph preparation folds that If before any target sees it)
        assert any(n.split(":")[0] in PNNX_FORMS for n in cell["notes"]), cell["notes"]


def test_a_data_dependent_if_is_named_not_crashed_on(tmp_path):
    """An If on the input's values, its branches reading the main graph's weights: pnnx
    crashed on it; now it converts, and the cell fails naming the If ncnn has no layer for
    (ncnn has no control flow) and the input it depends on."""
    then = helper.make_graph([helper.make_node("Mul", ["x", "k"], ["t"])], "then", [],
                             [_image("t")])
    other = helper.make_graph([helper.make_node("Add", ["x", "k"], ["e"])], "else", [],
                              [_image("e")])
    nodes = [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
             helper.make_node("Greater", ["s", "zero"], ["pos"]),
             helper.make_node("If", ["pos"], ["y"], then_branch=then, else_branch=other)]
    model = _save(tmp_path / "branchy.onnx", nodes, [_image()], [_out()],
                  [_weights("k", 1, 4, 1, 1), _init("zero", np.array(0.0, np.float32))])
    before = _lower_as_before(model, tmp_path)
    assert "crashed" in before and "If node" in before
    r = run_cli("build", model, "--profile", "x86-64", "--target", "ncnn", "--precision",
                "fp32", "--runs", "3", "-o", tmp_path / "out", *NO_ESTIMATE)
    assert r.returncode == 1
    cell = cells_in(tmp_path / "out", "branchy")["x86-64/ncnn-fp32"]
    assert cell["status"] == "failed" and "\n" not in cell["reason"]
    assert "no layer for op If" in cell["reason"] and "crashed" not in cell["reason"]


def test_the_rewrites_keep_what_the_model_computes(tmp_path):
    """Each model through every form, against itself in ONNX Runtime (the reference)."""
    for name, make in MODELS.items():
        path = make(tmp_path / f"{name}.onnx")
        model = onnx.load(str(path))
        rewritten, notes = apply_where_they_apply(model, PNNX_FORMS)
        assert notes, name
        out = tmp_path / f"{name}-rewritten.onnx"
        onnx.save(rewritten, str(out))
        feeds = [{i["name"]: (MASKED[i["name"]](1)[0] if i["name"] in MASKED else
                              np.ones(i["shape"], np.int64) if i["dtype"] == "int64" else
                              RNG.standard_normal(i["shape"]).astype(np.float32))
                  for i in _inputs(path)}]
        retyped = {i.name for i in rewritten.graph.input
                   if i.type.tensor_type.elem_type == TensorProto.FLOAT}
        want = run_onnx(path, feeds)
        got = run_onnx(out, [{k: v.astype(np.float32) if k in retyped else v
                              for k, v in feed.items()} for feed in feeds])
        for key in want:
            np.testing.assert_allclose(got[key][0], want[key][0], rtol=1e-5, atol=1e-5)
        assert not get("explicit-pads").applies(rewritten)
        assert not get("crop-flip-slices").applies(rewritten)


# --------------------------------------------------------------------------- pnnx crashes
def _pnnx(model: Path, inputs: list[dict]):
    from edgepack import procs
    from edgepack.targets.ncnn import _shape_arg

    return procs.run([pnnx_executable(), model.name, f"inputshape={_shape_arg(inputs)}",
                      "fp16=0"], what="pnnx", timeout=120, cwd=model.parent, capture=True)


def test_a_pnnx_crash_names_the_node_in_one_line(tmp_path):
    """pnnx dies on a signal: the reason says so and names the node, found by the known
    causes (here a token-type table its made-up ids overrun, and If branches reading the main
    graph's weights)."""
    gathers, ifs = gathers_model(tmp_path / "g.onnx"), if_model(tmp_path / "i.onnx")
    for model in (gathers, ifs):
        assert crashed(_pnnx(model, _inputs(model)))
    (tmp_path / "g").mkdir()
    reason = _lower_as_before(gathers, tmp_path / "g")
    assert reason.startswith("pnnx ") and "crashed" in reason and "\n" not in reason
    assert "fails on the made-up inputs pnnx runs the graph with" in reason
    assert "Gather" in reason
    (tmp_path / "i").mkdir()
    reason = _lower_as_before(ifs, tmp_path / "i")
    assert "If node" in reason
    assert "reads the main graph's initializer(s) k" in reason


def test_bisection_finds_the_node_pnnx_crashes_on(tmp_path):
    """With no known cause to go by, pnnx runs on halving prefixes of the graph end at the
    node it dies on."""
    model = gathers_model(tmp_path / "g.onnx")
    proto = onnx.load(str(model))
    inputs = _inputs(model)
    node, runs = bisect(proto, lambda path: _pnnx(path, inputs))
    assert node is not None and node.op_type == "Gather" and node.input[0] == "types"
    assert runs <= len(proto.graph.node).bit_length() + 1
    assert predict(proto, inputs) is not None  # (the cheap check agrees)
