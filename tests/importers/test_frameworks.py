"""Models in from PyTorch, Keras/TensorFlow and TFLite, built in the test with their own
framework, imported, and every target verified against that framework."""

from __future__ import annotations

import json
import subprocess
import textwrap
import zipfile

import pytest

from tests.conftest import run_cli
from tests.helpers.reports import read_report

ALL = "ort,openvino,tflite"
TORCH_MODEL = textwrap.dedent("""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
            self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
            self.head = nn.Linear(8, 4)

        def forward(self, image):
            x = torch.relu(self.conv1(image))
            x = torch.relu(self.conv2(x))
            return self.head(x.mean(dim=(2, 3)))

    def make_model():
        torch.manual_seed(0)
        return Net()

    def raises():
        raise RuntimeError("no such checkpoint")

    def not_a_module():
        return {"weights": 1}
""")


def _build(model, out, *args, targets=ALL):
    return run_cli("build", model, "--profile", "x86-64", "--target", targets, "--precision",
                   "fp32", "--runs", "5", "-o", out, *args)



def _accepted(report):
    return {c["target"]: next(a["strategy"] for a in c["attempts"] if a["outcome"] ==
                              "accepted") for c in report["cells"] if c["status"] == "ok"}


def _one_line(r, match):
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgepack: error: ") and match in lines[0], \
        r.stderr


@pytest.fixture(scope="module")
def torch_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("torch")
    (folder / "model.py").write_text(TORCH_MODEL)
    script = textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(folder)!r})
        from model import make_model
        m = make_model().eval()
        torch.jit.script(m).save({str(folder / 'scripted.pt')!r})
        torch.save(m, {str(folder / 'pickled.pt')!r})
        torch.save(m.state_dict(), {str(folder / 'weights.pt')!r})
        ep = torch.export.export(m, (torch.zeros(1, 3, 16, 16),))
        torch.export.save(ep, {str(folder / 'program.pt2')!r})
    """)
    subprocess.run([__import__("sys").executable, "-c", script], check=True)
    return folder


def test_torch_entry_point_verified_against_torch_on_every_target(torch_files, tmp_path):
    out = tmp_path / "dist"
    r = _build(f"{torch_files / 'model.py'}:make_model", out, "--input-shape",
               "image=1,3,16,16", "--weights", torch_files / "weights.pt")
    assert r.returncode == 0, r.stderr
    report = read_report(out, "model")
    imported = report["stages"][0]
    assert imported["format"] == "torch" and imported["status"] == "ok"
    assert imported["exporter"] == "torch.onnx.export(dynamo=True)"
    assert imported["check"]["rel_error"] < 1e-4  # the ONNX export against torch itself
    assert report["source"]["inputs"][0]["name"] == "image"  # forward()'s argument name
    assert _accepted(report)["openvino"] == "convert-source"  # read from torch directly
    for cell in report["cells"]:
        assert cell["accuracy"]["outputs"]["output_0"]["cosine"] > 0.99999


def test_torch_needs_input_shapes_and_says_so(torch_files, tmp_path):
    out = tmp_path / "dist"
    _one_line(_build(f"{torch_files / 'model.py'}:make_model", out),
              "does not declare the shape of input 'image': pass --input-shape image=")
    assert not out.exists()


def test_torchscript_imports_and_a_pickle_needs_trust(torch_files, tmp_path):
    out = tmp_path / "dist"
    r = _build(torch_files / "scripted.pt", out, "--input-shape", "image=1,3,16,16",
               targets="ort")
    assert r.returncode == 0, r.stderr
    assert read_report(out, "scripted")["stages"][0]["exporter"] == \
        "torch.onnx.export(dynamo=False)"
    _one_line(_build(torch_files / "pickled.pt", tmp_path / "p"),
              "is a pickled PyTorch file, not TorchScript: loading it runs arbitrary code")
    assert not (tmp_path / "p").exists()
    r = _build(torch_files / "pickled.pt", tmp_path / "p", "--input-shape", "image=1,3,16,16",
               "--trust-pickle", targets="ort")
    assert r.returncode == 0, r.stderr


def test_exported_program_keeps_its_shapes(torch_files, tmp_path):
    """No --input-shape: the program's own example shape (1, 3, 16, 16) is the model's, and
    every bundle takes it and matches torch."""
    out = tmp_path / "dist"
    r = _build(torch_files / "program.pt2", out, targets="ort,openvino")
    assert r.returncode == 0, r.stderr
    report = read_report(out, "program")
    (image,) = report["source"]["inputs"]
    assert image["shape"] == [1, 3, 16, 16]
    assert report["stages"][0]["format"] == "torch" and report["stages"][0]["status"] == "ok"
    for cell in report["cells"]:
        assert cell["status"] == "ok", cell["reason"]
        manifest = json.loads((out / "program" / cell["bundle"] / "manifest.json").read_text())
        assert manifest["inputs"][0]["shape"] == [1, 3, 16, 16]
        assert cell["accuracy"]["outputs"]["output_0"]["cosine"] > 0.99999


@pytest.mark.parametrize("entry, match", [
    ("raises", "raised RuntimeError: no such checkpoint"),
    ("not_a_module", "returned a dict, not a torch.nn.Module"),
    ("missing", "defines no function 'missing'"),
])
def test_bad_entry_points(torch_files, tmp_path, entry, match):
    out = tmp_path / "dist"
    _one_line(_build(f"{torch_files / 'model.py'}:{entry}", out, "--input-shape",
                     "image=1,3,16,16"), match)
    assert not out.exists()


TF_MODELS = textwrap.dedent("""
    import sys, keras, tf_keras, tensorflow as tf
    folder = sys.argv[1]
    inp = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Conv2D(8, 3, activation="relu")(inp)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(4, name="scores")(x)
    m = keras.Model(inp, out)
    m.save(f"{folder}/k3.keras")
    m.export(f"{folder}/saved", format="tf_saved_model")
    legacy = tf_keras.Sequential([
        tf_keras.layers.Conv2D(4, 3, input_shape=(8, 8, 2), activation="relu"),
        tf_keras.layers.Conv2D(4, 3, activation="relu"),
        tf_keras.layers.Flatten(), tf_keras.layers.Dense(3)])
    legacy.save(f"{folder}/legacy.h5")
    converter = tf.lite.TFLiteConverter.from_saved_model(f"{folder}/saved")
    open(f"{folder}/model.tflite", "wb").write(converter.convert())
""")


@pytest.fixture(scope="module")
def tf_files(tmp_path_factory):
    from edgepack.importers.tf import TOOLCHAIN

    folder = tmp_path_factory.mktemp("tf")
    subprocess.run([str(TOOLCHAIN.bin / "python"), "-c", TF_MODELS, str(folder)], check=True,
                   capture_output=True, env=TOOLCHAIN.env())
    return folder


@pytest.mark.parametrize("name, native", [
    ("k3.keras", {"openvino": "convert-source"}),
    ("legacy.h5", {"openvino": "convert-source"}),
    ("saved", {"openvino": "convert-source"}),
    ("model.tflite", {"openvino": "convert-source", "tflite": "original .tflite"}),
])
def test_tensorflow_formats_verified_against_their_framework(tf_files, tmp_path, name, native):
    out = tmp_path / "dist"
    r = _build(tf_files / name, out)
    assert r.returncode == 0, r.stderr
    stem = name.split(".")[0]
    report = read_report(out, stem)
    assert report["stages"][0]["status"] == "ok" and report["stages"][0]["check"][
        "rel_error"] < 1e-4
    assert report["source"]["layout"] == "NHWC"
    if name != "model.tflite":  # a .tflite has a static batch of 1 already
        assert "dynamic batch dimension is built as 1" in " ".join(report["notes"])
    accepted = _accepted(report)
    assert set(accepted) == {"ort", "openvino", "tflite"}
    for target, strategy in native.items():
        assert accepted[target] == strategy


def test_keras_int8_uses_tensorflow_s_own_quantizer(tf_files, tmp_path):
    out = tmp_path / "dist"
    r = run_cli("build", tf_files / "k3.keras", "--profile", "x86-64", "--target", "tflite",
                "--precision", "int8", "--allow-synthetic-calibration", "--min-speedup", "0",
                "--runs", "5", "-o", out)
    assert r.returncode == 0, r.stderr
    assert _accepted(read_report(out, "k3"))["tflite"] == "tf.lite.TFLiteConverter"


def test_bad_framework_files(tf_files, tmp_path):
    out = tmp_path / "dist"
    cut = tmp_path / "cut.h5"
    cut.write_bytes((tf_files / "legacy.h5").read_bytes()[:2000])
    _one_line(_build(cut, out), "cannot be loaded as a Keras model")
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"\x00" * 64)
    _one_line(_build(garbage, out), "is not a TFLite flatbuffer")
    import shutil

    broken = tmp_path / "novars"
    shutil.copytree(tf_files / "saved", broken)
    shutil.rmtree(broken / "variables")
    _one_line(_build(broken, out), "has no variables/ folder")
    notzip = tmp_path / "x.keras"
    notzip.write_text("hello")
    _one_line(_build(notzip, out), "is not a .keras archive")
    assert not out.exists()
    assert zipfile.is_zipfile(tf_files / "k3.keras")


def test_inspect_every_format(torch_files, tf_files):
    r = run_cli("inspect", f"{torch_files / 'model.py'}:make_model")
    assert r.returncode == 0, r.stderr
    assert "not declared" in r.stdout and "--input-shape image=" in r.stdout
    for name in ("k3.keras", "legacy.h5", "saved", "model.tflite"):
        r = run_cli("inspect", tf_files / name, "--json")
        assert r.returncode == 0, r.stderr
        info = json.loads(r.stdout)
        assert info["inputs"] and info["outputs"] and info["layout"] == "NHWC"
