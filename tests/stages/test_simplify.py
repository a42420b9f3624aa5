import numpy as np
import onnx
from onnx import numpy_helper

from edgepack.data import load_dataset
from edgepack.importers.onnx import import_onnx
from edgepack.stages import simplify


def _feeds(samples, model):
    return list(load_dataset(samples / "mobilenet_digits.npz", model.inputs, "--data")
                .head(4).feeds())


def test_simplify_sample_is_accepted(samples, tmp_path):
    ref = import_onnx(samples / "mobilenet_digits.onnx", tmp_path / "ref.onnx")
    record = simplify.simplify_onnx(ref.path, tmp_path / "s.onnx", _feeds(samples, ref))
    assert record["status"] == "ok" and record["tool"].startswith("onnxsim")
    assert record["nodes_after"] <= record["nodes_before"]
    assert record["check"]["rel_error"] <= simplify.SIMPLIFY_MAX_REL_ERROR


def test_wrong_or_failing_simplifiers_keep_the_original(samples, tmp_path, monkeypatch):
    def breaks(model):
        init = next(i for i in model.graph.initializer if len(i.dims) == 4)
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(2),
                                              init.name))
        return model

    def crashes(model):
        raise RuntimeError("simplifier exploded")

    monkeypatch.setattr(simplify, "SIMPLIFIERS", {"onnxsim": breaks, "onnxslim": crashes})
    ref = import_onnx(samples / "mobilenet_digits.onnx", tmp_path / "ref.onnx")
    record = simplify.simplify_onnx(ref.path, tmp_path / "s.onnx", _feeds(samples, ref))
    assert record["status"] == "kept-original"
    assert "output differs" in record["reason"] and "simplifier exploded" in record["reason"]
    assert onnx.load(str(tmp_path / "s.onnx")) == onnx.load(str(ref.path))


def test_a_simplifier_without_metadata_falls_back_to_the_next(samples, tmp_path, monkeypatch):
    import importlib.metadata

    real = importlib.metadata.version

    def version(name):
        if name == "onnxsim":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    ref = import_onnx(samples / "mobilenet_digits.onnx", tmp_path / "ref.onnx")
    record = simplify.simplify_onnx(ref.path, tmp_path / "s.onnx", _feeds(samples, ref))
    assert record["status"] == "ok" and record["tool"].startswith("onnxslim")
    assert record["attempts"][0]["outcome"].startswith("failed: PackageNotFoundError")
