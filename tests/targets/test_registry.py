"""Guard: every registered target lowers the 3-channel sample and its device backend, driven
by the runner core, reproduces the reference (a new target without a working round trip fails
here)."""

from __future__ import annotations

import numpy as np
import pytest

from edgepack.data import load_dataset
from edgepack.device import core
from edgepack.importers.onnx import import_onnx
from edgepack.profiles import load_profile
from edgepack.stages.simplify import run_onnx
from edgepack.targets import get_target, target_names
from edgepack.targets.base import LowerContext
from edgepack.verify import compare_outputs


@pytest.mark.parametrize("name", target_names())
def test_round_trip_fp32(name, samples, tmp_path):
    target = get_target(name)
    if not target.available():
        pytest.fail(f"the test environment lacks {target.packages[0]}: "
                    f"pip install 'edgepack[{target.extra}]'")
    ref = import_onnx(samples / "mobilenet_digits.onnx", tmp_path / "ref.onnx")
    data = load_dataset(samples / "mobilenet_digits.npz", ref.inputs, "--data").head(40)
    out = tmp_path / "bundle"
    out.mkdir()
    profile = load_profile("x86-64")
    strategy = next(s for s in target.strategies("fp32", profile)
                    if not (s.unavailable or s.rewrites or s.source_formats))
    lowered = target.lower(ref.path, "fp32", profile, None, out,
                           LowerContext(strategy=strategy, cache_dir=str(tmp_path / "cache")))
    assert (out / lowered.model_file).is_file()
    assert [i["name"] for i in lowered.inputs] == ["input"]
    expected = run_onnx(ref.path, list(data.feeds()))
    backend = core.load_backend(target.backend_file())
    with core.Model(backend, out / lowered.model_file, lowered.inputs, lowered.outputs, 2,
                    lowered.runtime_options) as model:
        got = core.run_samples(model, data.arrays)
    m = compare_outputs(expected, got, data.labels)["logits"]
    assert m["cosine"] > 0.99999 and m["rel_error"] < 1e-4
    assert m["top1"] == m["top1_reference"] > 0.9


def test_model_checks_its_inputs(samples, tmp_path):
    target = get_target("ort")
    ref = import_onnx(samples / "mobilenet_digits.onnx", tmp_path / "ref.onnx")
    lowered = target.lower(ref.path, "fp32", load_profile("x86-64"), None, tmp_path,
                           LowerContext())
    backend = core.load_backend(target.backend_file())
    with core.Model(backend, tmp_path / lowered.model_file, lowered.inputs, lowered.outputs,
                    1, {}) as model:
        with pytest.raises(core.BundleProblem, match=r"input 'input' got float32\[1, 32, 32, 3\]"):
            model.infer({"input": np.zeros((1, 32, 32, 3), np.float32)})
