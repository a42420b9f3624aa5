"""The openvino target's bundles find their tensors where OpenVINO put them, and an fp32
bundle computes in fp32 also when the model's weights are stored compressed."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime
import openvino as ov

from edgepack.device import core
from edgepack.profiles import load_profile
from edgepack.targets.base import LowerContext
from edgepack.targets.openvino import TARGET
from tests.conftest import NO_ESTIMATE, run_cli
from tests.helpers import models


def test_outputs_are_found_where_openvino_put_them(tmp_path):
    model = models.folded_branch_outputs(tmp_path / "m.onnx")
    lowered = TARGET.lower(model, "fp32", load_profile("x86-64"), None, tmp_path,
                           LowerContext())
    # compiling folds the If: the output's tensor now reports the branch's name first, the
    # name a lookup by the first name would have used ("the runtime returned no output")
    compiled = ov.Core().compile_model(str(tmp_path / "model.xml"), "CPU")
    assert compiled.outputs[0].get_any_name() == "/branch/relu"
    assert [(o["name"], o["runtime_index"]) for o in lowered.outputs] == [("output", 0),
                                                                           ("hn", 1)]
    x = np.random.default_rng(0).standard_normal((1, 8)).astype(np.float32)
    want = dict(zip(("output", "hn"), onnxruntime.InferenceSession(str(model)).run(
        None, {"x": x}), strict=True))
    backend = core.load_backend(TARGET.backend_file())
    with core.Model(backend, tmp_path / "model.xml", lowered.inputs, lowered.outputs, 1,
                    lowered.runtime_options) as bundle:
        got = bundle.infer({"x": x})
        assert bundle.info["outputs"] == {"output": 0, "hn": 1}
    for name in ("output", "hn"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)


def test_an_fp32_bundle_of_a_weight_compressed_model_pins_fp32(tmp_path):
    # int8 weights with Cast·Mul: where its CPU has int8 kernels, the plugin quantizes these
    # MatMuls' activations by default, which an fp32 bundle must not do
    out = tmp_path / "dist"
    r = run_cli("build", models.weight_compressed_mlp(tmp_path / "mlp.onnx"), "--target",
                "openvino", "--precision", "fp32", "--runs", "3", "-o", out, *NO_ESTIMATE)
    assert r.returncode == 0, r.stderr
    (cell,) = json.loads((out / "mlp" / "report.json").read_text())["cells"]
    assert cell["status"] == "ok" and cell["accuracy"]["outputs"]["y"]["rel_error"] < 1e-5
    assert cell["runtime"]["dynamic_quantization_group_size"] == "0"
    assert "float32" in cell["runtime"]["inference_precision"]
    manifest = json.loads((out / "mlp" / cell["bundle"] / "manifest.json").read_text())
    assert manifest["runtime"]["options"]["openvino_config"] == {
        "INFERENCE_PRECISION_HINT": "f32", "DYNAMIC_QUANTIZATION_GROUP_SIZE": "0"}
    prepared = onnx.load(str(out / "mlp" / "models" / "prepared.onnx"))
    assert "Cast" in {n.op_type for n in prepared.graph.node}  # the weights stayed int8
