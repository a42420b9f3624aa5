"""TFLite files that tf2onnx cannot turn into a valid ONNX model, built in the test with
TensorFlow's own converter: what can be repaired is, and the targets that read the .tflite
itself are built anyway, verified against LiteRT."""

from __future__ import annotations

import json
import subprocess
import textwrap

import numpy as np
import pytest

from edgepack.importers import tflite
from tests.conftest import NO_ESTIMATE, run_cli

TFLITE_MODELS = textwrap.dedent("""
    import sys, numpy as np, tensorflow as tf
    folder = sys.argv[1]
    rng = np.random.default_rng(0)

    def save(name, module, fn, optimizations=()):
        conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()],
                                                               module)
        conv.optimizations = list(optimizations)
        open(f"{folder}/{name}.tflite", "wb").write(conv.convert())

    # sparse weights (a pruned layer): the .tflite keeps them compressed behind DENSIFY
    w = rng.standard_normal((64, 32)).astype(np.float32)
    w[np.abs(w) < 1.5] = 0
    class Sparse(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 64], tf.float32, name="x")])
        def f(self, x):
            return {"scores": tf.nn.relu(x @ tf.constant(w))}
    sparse = Sparse()
    save("sparse", sparse, sparse.f, [tf.lite.Optimize.EXPERIMENTAL_SPARSITY])

    # two outputs that are one tensor
    v = tf.constant(rng.standard_normal((8, 4)).astype(np.float32))
    class Twice(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32, name="x")])
        def f(self, x):
            y = tf.nn.relu(x @ v)
            return {"scores": y, "copy": y}
    twice = Twice()
    save("twice", twice, twice.f)
""")


@pytest.fixture(scope="module")
def tflite_files(tmp_path_factory):
    from edgepack.importers.tf import TOOLCHAIN

    folder = tmp_path_factory.mktemp("tflite")
    subprocess.run([str(TOOLCHAIN.bin / "python"), "-c", TFLITE_MODELS, str(folder)],
                   check=True, capture_output=True, env=TOOLCHAIN.env())
    return folder


def _build(model, out):
    return run_cli("build", model, "--target", "ort,openvino,tflite", "--precision", "fp32",
                   "--runs", "3", "-o", out, *NO_ESTIMATE)


def test_a_tflite_whose_onnx_export_fails_still_builds_its_own_targets(tflite_files, tmp_path):
    out = tmp_path / "dist"
    r = _build(tflite_files / "sparse.tflite", out)
    assert r.returncode == 1, r.stderr  # the ort cell fails: it needs the ONNX model
    report = json.loads((out / "sparse" / "report.json").read_text())
    cells = {c["target"]: c for c in report["cells"]}
    for target, strategy in (("tflite", "original .tflite"), ("openvino", "convert-source")):
        cell = cells[target]
        assert cell["status"] == "ok", cell["reason"]
        (output,) = cell["accuracy"]["outputs"].values()
        assert output["cosine"] > 0.9999  # against LiteRT
        assert next(a["strategy"] for a in cell["attempts"] if a["outcome"] == "accepted") \
            == strategy
    assert cells["ort"]["status"] == "failed"
    assert "tf2onnx failed: ValueError: cannot reshape array" in cells["ort"]["reason"]
    assert report["stages"][0]["status"] == "failed"
    everything = r.stdout + r.stderr + json.dumps(report)
    assert ".edgepack-build-" not in everything  # no temporary path reaches the user


def test_two_outputs_of_one_tensor_are_named_apart(tflite_files, tmp_path):
    out = tmp_path / "dist"
    r = _build(tflite_files / "twice.tflite", out)
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "twice" / "report.json").read_text())
    names = [o["name"] for o in report["source"]["outputs"]]
    assert len(names) == 2 and names[1] == names[0] + "_1"
    for cell in report["cells"]:
        assert cell["status"] == "ok", (cell["target"], cell["reason"])
        assert set(cell["accuracy"]["outputs"]) == set(names)


class _NoXnnpack:
    """A LiteRT Interpreter whose default delegate cannot prepare the model."""

    real = None

    def __init__(self, model_path, **kwargs):
        self.inner = self.real(model_path=model_path, **kwargs)
        self.delegate = "experimental_op_resolver_type" not in kwargs

    def allocate_tensors(self):
        if self.delegate:
            raise RuntimeError("XNNPack delegate failed to reshape runtime")
        self.inner.allocate_tensors()

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_the_reference_runs_without_xnnpack_when_the_delegate_fails(tflite_files, tmp_path,
                                                                    monkeypatch):
    from ai_edge_litert import interpreter as lite

    monkeypatch.setattr(_NoXnnpack, "real", lite.Interpreter)
    monkeypatch.setattr(lite, "Interpreter", _NoXnnpack)
    source = tflite.Source(tflite_files / "twice.tflite", "tflite")
    described = tflite.IMPORTER.describe(source, tmp_path, 60)
    assert any("XNNPack delegate could not prepare this model" in n for n in described.notes)
    data = tmp_path / "data.npz"
    np.savez(data, **{described.inputs[0].name: np.ones((2, 1, 8), np.float32)})
    record = tflite.IMPORTER.run(source, described.inputs, ["y", "y_1"], data,
                                 tmp_path / "out.npz", tmp_path, 60)
    assert record["notes"] == tflite.delegate_note(False)
    with np.load(tmp_path / "out.npz") as z:
        assert z["y"].shape == (2, 1, 4)
        np.testing.assert_array_equal(z["y"], z["y_1"])
