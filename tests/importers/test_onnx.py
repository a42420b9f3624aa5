import pytest

from edgepack.errors import ModelError, ShapeError
from edgepack.importers.onnx import import_onnx, read_onnx, summarize_onnx
from edgepack.options import parse_input_shapes
from tests.conftest import make_matmul_model


def test_fix_dynamic_batch(tmp_path):
    src = make_matmul_model(tmp_path / "dyn.onnx", batch="N")
    art = import_onnx(src, tmp_path / "fixed.onnx", parse_input_shapes(["x=2,4"]))
    assert art.inputs[0].shape == (2, 4) and art.inputs[0].is_static
    assert art.outputs[0].shape == (2, 3)  # re-inferred through the graph


@pytest.mark.parametrize("flag, match", [
    ("y=1,4", "model's inputs are: x"),
    ("x=1,4,4", "has 3 dims"),
    ("x=1,a", "not NAME=D1,D2"),
    ("x", "not NAME=D1,D2"),
])
def test_bad_input_shapes(tmp_path, flag, match):
    src = make_matmul_model(tmp_path / "dyn.onnx", batch="N")
    with pytest.raises(ShapeError, match=match):
        import_onnx(src, tmp_path / "fixed.onnx", parse_input_shapes([flag]))


def test_conflicting_fixed_dim(tmp_path):
    src = make_matmul_model(tmp_path / "m.onnx", batch=1)
    with pytest.raises(ShapeError, match="conflicts with the model's fixed shape"):
        import_onnx(src, tmp_path / "o.onnx", {"x": (1, 5)})


def test_corrupt_files(tmp_path):
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model\n")
    with pytest.raises(ModelError, match="not a (readable|valid) ONNX model"):
        read_onnx(text)
    good = make_matmul_model(tmp_path / "m.onnx").read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(ModelError, match="ONNX model"):
        read_onnx(cut)
    with pytest.raises(ModelError, match="does not exist"):
        read_onnx(tmp_path / "missing.onnx")


def test_summary_of_sample(samples):
    s = summarize_onnx(samples / "mobilenet_digits.onnx")
    assert [i.shape for i in s.inputs] == [(1, 3, 32, 32)]
    assert s.inputs[0].layout == "NCHW"
    assert s.op_histogram["Conv"] >= 3 and "Add" in s.op_histogram
    assert s.parameters > 1000 and s.opsets["ai.onnx"] == 17
