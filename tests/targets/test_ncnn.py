"""The ncnn target: pnnx from the prepared ONNX model (or the traced PyTorch module), the ncnn
wheel on the device; fp32 pinned to fp32, fp16 as ncnn runs it by default, int8 quantized by
edgepack's own writer of ncnn's int8 format, calibrated with the user's data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgepack.cpus import guest_for
from edgepack.device import core
from edgepack.emulation import SYSROOT
from edgepack.profiles import load_profile
from edgepack.stages.simplify import run_onnx
from edgepack.targets import get_target
from edgepack.targets.base import LowerContext
from edgepack.targets.ncnn import FP32, failure, unsupported_layers
from tests.conftest import SAMPLES, run_cli, selftest_extracted
from tests.helpers.board import install_offline_and_selftest
from tests.helpers.reports import cells_by_key, read_report

TARGET = get_target("ncnn")
EMULATOR = SYSROOT.missing()  # None when the arm64 sysroot holds the runtimes installed here
COUNTER = SYSROOT.counter_missing()


@pytest.fixture(scope="module")
def rpi5_build(tmp_path_factory):
    """The 3-channel sample for the Pi 4 and the Pi 5: fp32, fp16 and int8 (calibrated on
    half of --data, evaluated on the other half), with their wheels, verified on the emulated
    Cortex-A72 and A76 and with a device estimate where the emulator is installed; shipped
    whatever their speed (--min-speedup 0: this is about what the device computes)."""
    out = tmp_path_factory.mktemp("ncnn") / "dist"
    extra = ["--emulate"] if EMULATOR is None else []
    extra += ["--device-estimate", "on" if COUNTER is None else "off"]
    r = run_cli("build", SAMPLES / "mobilenet_digits.onnx", "--profile", "rpi4,rpi5",
                "--target", "ncnn", "--precision", "fp32,fp16,int8", "--data",
                SAMPLES / "mobilenet_digits.npz", "--runs", "10", "--min-speedup", "0",
                "--vendor-wheels", "-o", out, *extra)
    return r, out


def test_fp32_fp16_and_int8_verify(rpi5_build):
    r, out = rpi5_build
    assert r.returncode == 0, r.stderr
    cells = cells_by_key(read_report(out, "mobilenet_digits"))
    for precision in ("fp32", "fp16"):
        cell = cells[f"rpi5/ncnn-{precision}"]
        assert cell["status"] == "ok", cell["reason"]
        m = cell["accuracy"]["outputs"]["logits"]
        assert cell["accuracy"]["data"] == "labelled" and m["top1"] == m["top1_reference"]
        (accepted,) = [a for a in cell["attempts"] if a["outcome"] == "accepted"]
        assert accepted["strategy"].startswith("pnnx-") and accepted["model"] == "prepared"
        assert accepted["stats"]["converter"].startswith("pnnx ")
    assert cells["rpi5/ncnn-fp32"]["accuracy"]["outputs"]["logits"]["rel_error"] < 1e-5
    for profile in ("rpi4", "rpi5"):
        int8 = cells[f"{profile}/ncnn-int8"]
        assert int8["status"] == "ok", int8["reason"]
        m = int8["accuracy"]["outputs"]["logits"]
        assert m["top1_drop_points"] <= 1.0 and m["cosine"] >= 0.98  # the int8 budget
        assert all(g["ok"] for g in int8["gates"])
        assert int8["runtime"]["inference_precision"] == "int8"
        assert any(n.startswith("int8: 8 of 8 convolution, inner-product and linear layers")
                   for n in int8["notes"]), int8["notes"]
    bundle = out / "mobilenet_digits" / "rpi5"
    manifest = json.loads((bundle / "ncnn-int8" / "manifest.json").read_text())
    assert manifest["runtime"]["options"]["ncnn_options"] == {**FP32, "use_int8_inference": True}
    assert (bundle / "ncnn-int8" / "model.ncnn.bin").stat().st_size < \
        0.4 * (bundle / "ncnn-fp32" / "model.ncnn.bin").stat().st_size  # int8 weights
    param = (bundle / "ncnn-int8" / "model.ncnn.param").read_text()
    assert all(" 8=" in ln for ln in param.splitlines() if ln.startswith("Convolution"))


def test_manifest_pins_the_precision_and_maps_the_layout(rpi5_build):
    _, out = rpi5_build
    bundle = out / "mobilenet_digits" / "rpi5"
    fp32 = json.loads((bundle / "ncnn-fp32" / "manifest.json").read_text())
    fp16 = json.loads((bundle / "ncnn-fp16" / "manifest.json").read_text())
    assert fp32["runtime"]["options"]["ncnn_options"] == FP32
    assert all(fp16["runtime"]["options"]["ncnn_options"][k] for k in
               ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic"))
    (inp,) = fp32["inputs"]
    assert (inp["name"], inp["shape"], inp["layout"]) == ("input", [1, 3, 32, 32], "NCHW")
    assert (inp["runtime_name"], inp["runtime_shape"], inp["batch_axis"]) == \
        ("in0", [3, 32, 32], 0)
    assert fp32["model_file"] == "model.ncnn.param" and "model.ncnn.bin" in fp32["files"]
    assert "asimdhp" in " ".join(fp16["notes"])  # what the Pi 5 computes fp16 in
    assert "ncnn==" in (bundle / "ncnn-fp32" / "requirements.txt").read_text()
    # fp16 weights: about half the file
    assert (bundle / "ncnn-fp16" / "model.ncnn.bin").stat().st_size < \
        0.6 * (bundle / "ncnn-fp32" / "model.ncnn.bin").stat().st_size


def test_selftest_needs_only_ncnn_and_numpy(rpi5_build, tmp_path):
    _, out = rpi5_build
    r = selftest_extracted(out / "mobilenet_digits" / "rpi5" / "ncnn-fp16.tar.gz", tmp_path,
                           "ncnn", ("onnxruntime", "openvino", "ai_edge_litert", "pnnx"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "selftest passed on ncnn" in r.stdout


@pytest.mark.skipif(EMULATOR is not None, reason=str(EMULATOR))
def test_emulated_cortex_a72_and_a76_pass_every_precision(rpi5_build):
    """int8 within its budget on the emulated A72 (no dot product) and A76 (dot product:
    ncnn's other int8 kernels) as on the host."""
    _, out = rpi5_build
    cells = cells_by_key(read_report(out, "mobilenet_digits"))
    for profile, cpu in (("rpi4", "cortex-a72"), ("rpi5", "cortex-a76")):
        for precision in ("fp32", "fp16", "int8"):
            e = cells[f"{profile}/ncnn-{precision}"]["emulated"]
            assert e["status"] == "ok" and e["verified_on"] == f"emulated aarch64 ({cpu})", e
            assert "selftest passed on ncnn" in e["selftest"]
            assert all(g["ok"] for g in e["gates"])


@pytest.mark.skipif(COUNTER is not None, reason=str(COUNTER))
def test_int8_speed_is_decided_on_the_device_estimate(tmp_path):
    """With the default speed gate, int8 is shipped or declined on the estimated device
    ratio, which the cell names."""
    out = tmp_path / "dist"
    r = run_cli("build", SAMPLES / "mobilenet_digits.onnx", "--profile", "rpi5", "--target",
                "ncnn", "--precision", "fp32,int8", "--data", SAMPLES / "mobilenet_digits.npz",
                "--runs", "5", "--device-estimate", "on", "-o", out)
    assert r.returncode == 0, r.stderr
    int8 = cells_by_key(read_report(out, "mobilenet_digits"))["rpi5/ncnn-int8"]
    assert int8["status"] in ("ok", "declined"), int8["reason"]
    speed = int8["speed"]
    assert speed["source"] == "estimate" and speed["verdict"] in ("faster", "not faster")
    if int8["status"] == "declined":
        assert f"{speed['speedup']:.2f}×" in int8["reason"]
        assert "estimated for the device's CPU" in int8["reason"]
        # the strategies that run the same kernels are not tried after the first refusal
        assert any(a["outcome"] == "skipped" and "same kernels" in a["reason"]
                   for a in int8["attempts"])


@pytest.mark.skipif(COUNTER is not None, reason=str(COUNTER))
def test_device_estimates_count_fp16_instructions_on_the_a76(rpi5_build):
    _, out = rpi5_build
    cells = cells_by_key(read_report(out, "mobilenet_digits"))
    fp32, fp16 = (cells[f"rpi5/ncnn-{p}"]["device"] for p in ("fp32", "fp16"))
    for device in (fp32, fp16):
        assert device["status"] == "ok" and device["cpu"] == "Cortex-A76"
        assert device["instructions"]["total"] > 1e5
    assert fp32["instructions"]["fp16"] == 0 < fp16["instructions"]["fp16"]


@pytest.mark.skipif(EMULATOR is not None, reason=str(EMULATOR))
def test_vendored_wheels_install_offline_on_an_arm64_python(rpi5_build, tmp_path):
    _, out = rpi5_build
    bundle = out / "mobilenet_digits" / "rpi5" / "ncnn-fp32"
    wheels = sorted(p.name for p in (bundle / "wheels").glob("*.whl"))
    assert any(w.startswith("ncnn-") and "aarch64" in w for w in wheels), wheels
    output = install_offline_and_selftest(bundle, guest_for("Cortex-A76"), tmp_path)
    assert "selftest passed on ncnn" in output


# --------------------------------------------------------------------------- small models
def _save(nodes, inputs, outputs, inits, path: Path) -> Path:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def _two_outputs(path: Path) -> Path:
    """Two inputs (an image and a feature vector with no batch axis in ncnn) and two
    outputs (a 4-channel feature map and softmax scores): layout bugs show with C > 1."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "B"),
             numpy_helper.from_array(rng.standard_normal((16, 5)).astype(np.float32), "F")]
    nodes = [helper.make_node("Conv", ["image", "W", "B"], ["conv"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["conv"], ["features"]),
             helper.make_node("MatMul", ["vector", "F"], ["mm"]),
             helper.make_node("Softmax", ["mm"], ["scores"], axis=-1)]
    value = helper.make_tensor_value_info
    return _save(nodes, [value("image", TensorProto.FLOAT, [1, 3, 6, 5]),
                         value("vector", TensorProto.FLOAT, [1, 16])],
                 [value("scores", TensorProto.FLOAT, [1, 5]),
                  value("features", TensorProto.FLOAT, [1, 4, 6, 5])], inits, path)


def test_two_inputs_two_outputs_match_onnxruntime(tmp_path):
    model = _two_outputs(tmp_path / "two.onnx")
    out = tmp_path / "bundle"
    out.mkdir()
    lowered = TARGET.lower(model, "fp32", load_profile("x86-64"), None, out,
                           LowerContext(strategy=TARGET.strategies("fp32", None)[-1]))
    names = [(t["name"], t["runtime_name"]) for t in lowered.inputs + lowered.outputs]
    assert names == [("image", "in0"), ("vector", "in1"), ("scores", "out0"),
                     ("features", "out1")]
    rng = np.random.default_rng(1)
    arrays = {"image": rng.standard_normal((4, 1, 3, 6, 5)).astype(np.float32),
              "vector": rng.standard_normal((4, 1, 16)).astype(np.float32)}
    expected = run_onnx(model, [{k: v[i] for k, v in arrays.items()} for i in range(4)])
    backend = core.load_backend(TARGET.backend_file())
    with core.Model(backend, out / lowered.model_file, lowered.inputs, lowered.outputs, 2,
                    lowered.runtime_options) as m:
        got = core.run_samples(m, arrays)
        assert m.info["inference_precision"] == "f32" and m.info["threads"] == 2
    for name in ("scores", "features"):
        assert got[name][0].shape == expected[name][0].shape
        assert core.compare(expected[name], got[name])["max_abs"] < 1e-5


def _hardmax(path: Path) -> Path:
    """A conv net ending in Hardmax, an ONNX op ncnn has no layer for."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "W")
    value = helper.make_tensor_value_info
    return _save([helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1], name="conv"),
                  helper.make_node("Hardmax", ["c"], ["y"], axis=-1, name="pick_max")],
                 [value("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                 [value("y", TensorProto.FLOAT, [1, 4, 8, 8])], [w], path)


def test_an_op_ncnn_lacks_fails_the_cell_naming_op_and_node(tmp_path):
    out = tmp_path / "dist"
    r = run_cli("build", _hardmax(tmp_path / "hardmax.onnx"), "--profile", "x86-64",
                "--target", "ncnn", "--precision", "fp32", "--runs", "5", "-o", out)
    assert r.returncode == 1, r.stderr
    cell = cells_by_key(read_report(out, "hardmax"))["x86-64/ncnn-fp32"]
    assert cell["status"] == "failed"
    assert "has no layer for op Hardmax (ONNX node 'pick_max')" in cell["reason"]
    assert "\n" not in cell["reason"]
    for attempt in cell["attempts"]:
        assert "Hardmax (ONNX node 'pick_max')" in attempt["reason"]


def test_unsupported_layers_lists_onnx_ops_before_pnnx_leftovers(tmp_path):
    param = tmp_path / "m.ncnn.param"
    param.write_text("7767517\n4 4\nInput in0 0 1 in0\nReLU relu_0 1 1 in0 1\n"
                     "torch.gt torch.gt_0 1 1 1 2\nIf If_2 1 1 2 out0\n")
    problem = unsupported_layers(param, _hardmax(tmp_path / "m.onnx"))
    assert problem.endswith("has no layer for op If (pnnx layer 'If_2'); torch.gt "
                            "(pnnx layer 'torch.gt_0'): pnnx passed them through unconverted")


def test_a_pnnx_crash_is_reported_with_the_op_it_met(tmp_path):
    log = ("############# pass_level0 onnx\ncanonicalize ...   unexpected op_type Gelu\n"
           "ort CreateSession failed Fatal error: com.microsoft:Gelu(-1) is not a registered "
           "function/op\n")
    model = tmp_path / "model.onnx"
    value = helper.make_tensor_value_info
    graph = helper.make_graph([helper.make_node("Gelu", ["x"], ["y"], domain="com.microsoft",
                                                name="act")], "g",
                              [value("x", TensorProto.FLOAT, [1, 4])],
                              [value("y", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                      helper.make_opsetid("com.microsoft", 1)]),
              str(model))
    assert failure(log, model) == (
        "pnnx cannot convert op Gelu (ONNX node 'act'): ort CreateSession failed Fatal error: "
        "com.microsoft:Gelu(-1) is not a registered function/op")


def test_int8_dynamic_asked_for_by_name_is_declined_not_an_error(tmp_path):
    out = tmp_path / "dist"
    r = run_cli("plan", SAMPLES / "digits_cnn.onnx", "--profile", "x86-64", "--target", "ncnn",
                "--precision", "int8-dynamic,int8", "--data", SAMPLES / "digits_cnn.npz",
                "-o", out)
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    skipped = {s["cell"]: s["reason"] for s in plan["skipped"]}
    assert set(skipped) == {"x86-64/ncnn-int8-dynamic"}
    assert "calibrated ahead of time" in skipped["x86-64/ncnn-int8-dynamic"]
    assert plan["include"][0]["precisions"] == ["fp32", "int8"]


# --------------------------------------------------------------------------- native path
MODULE = '''
import torch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.head = torch.nn.Linear(8, 4)

    def forward(self, image):
        features = torch.relu(self.conv(image))
        return self.head(features.mean((2, 3))), features


def make_model():
    return Net()
'''


def test_a_pytorch_source_is_converted_from_torchscript(tmp_path):
    pytest.importorskip("torch")
    source = tmp_path / "net.py"
    source.write_text(MODULE)
    out = tmp_path / "dist"
    r = run_cli("build", f"{source}:make_model", "--input-shape", "image=1,3,12,10",
                "--profile", "x86-64", "--target", "ncnn", "--precision", "fp32", "--runs", "5",
                "-o", out)
    assert r.returncode == 0, r.stderr
    cell = cells_by_key(read_report(out, "net"))["x86-64/ncnn-fp32"]
    accepted = next(a for a in cell["attempts"] if a["outcome"] == "accepted")
    assert accepted["strategy"].endswith(" torchscript") and accepted["model"] == "source"
    assert "from the traced TorchScript module" in " ".join(cell["notes"])
    for m in cell["accuracy"]["outputs"].values():  # both outputs, against torch itself
        assert m["cosine"] > 0.99999 and m["rel_error"] < 1e-4


def test_symbolic_output_shapes_get_the_shapes_the_model_produces(tmp_path):
    """The minimally prepared model keeps its source's symbolic output declarations; the
    backend needs real shapes to put ncnn's blobs back into (seen on PP-OCRv4 rec)."""
    from edgepack.importers.onnx import io_specs
    from edgepack.targets.ncnn import static_outputs

    value = helper.make_tensor_value_info
    model = _save([helper.make_node("Transpose", ["x"], ["y"], perm=[0, 2, 1])],
                  [value("x", TensorProto.FLOAT, [1, 6, 40])],
                  [value("y", TensorProto.FLOAT, ["n", "t", 6])], [], tmp_path / "sym.onnx")
    inputs, outputs = io_specs(model)
    assert outputs[0]["shape"] != [1, 40, 6]
    assert static_outputs(model, inputs, outputs)[0]["shape"] == [1, 40, 6]


def test_an_opset_18_reduction_is_converted_down_for_pnnx(tmp_path):
    """Opset 18 moved Reduce* axes from an attribute to an input; pnnx drops the input and
    the mean reduces nothing (shape [1, 16, 128] for [1, 128]): the model reaches pnnx
    converted to opset 17, and verifies."""
    from tests.helpers.models import encoder_mlp

    model = encoder_mlp(tmp_path / "encoder.onnx")
    assert onnx.load(str(model)).opset_import[0].version == 18
    out = tmp_path / "dist"
    r = run_cli("build", model, "--profile", "x86-64", "--target", "ncnn", "--precision",
                "fp32", "--runs", "5", "--device-estimate", "off", "-o", out)
    assert r.returncode == 0, r.stderr
    (cell,) = read_report(out, "encoder")["cells"]
    assert cell["status"] == "ok", cell["reason"]
    assert "opset-17: written in opset 17 (was 18)" in cell["notes"]
