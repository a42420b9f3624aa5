"""Guard: every registered target lowers the 3-channel sample and its Runner reproduces the
reference (a new target without a working round trip fails here)."""

from __future__ import annotations

import numpy as np
import pytest

from edgepack.data import load_dataset
from edgepack.importers.onnx import import_onnx
from edgepack.profiles import load_profile
from edgepack.stages.simplify import run_onnx
from edgepack.targets import TARGETS, get_target
from edgepack.targets.base import LowerOptions
from edgepack.verify import compare_outputs


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_round_trip_fp32(name, samples, tmp_path):
    target = get_target(name)
    if not target.available():
        pytest.fail(f"the test environment lacks {target.package}: "
                    f"pip install 'edgepack[{target.extra}]'")
    ref = import_onnx(samples / "mobilenet_digits.onnx", tmp_path / "ref.onnx")
    data = load_dataset(samples / "mobilenet_digits.npz", ref.inputs, "--data").head(40)
    out = tmp_path / "bundle"
    out.mkdir()
    profile = load_profile("x86-64")
    strategy = next(s for s, unavailable in target.strategies("fp32", profile) if not unavailable)
    lowered = target.lower(ref.path, "fp32", profile, None, out,
                           LowerOptions(strategy=strategy, cache_dir=str(tmp_path / "cache")))
    assert (out / lowered.model_file).is_file()
    assert [i["name"] for i in lowered.inputs] == ["input"]
    expected = run_onnx(ref.path, list(data.feeds()))
    got = []
    options = {**lowered.runtime_options,
               "io": {"inputs": lowered.inputs, "outputs": lowered.outputs}}
    with target.runner(out / lowered.model_file, list(ref.inputs), 2, options) as runner:
        for feeds in data.feeds():
            got.append(runner.infer(feeds))
    stack = lambda rs: {k: np.concatenate([r[k] for r in rs]) for k in rs[0]}  # noqa: E731
    m = compare_outputs(stack(expected), stack(got), data.used_labels())["logits"]
    assert m["cosine"] > 0.99999 and m["rel_error"] < 1e-4
    assert m["top1"] == m["top1_reference"] > 0.9


def test_runner_checks_its_inputs(samples, tmp_path):
    target = get_target("ort")
    ref = import_onnx(samples / "mobilenet_digits.onnx", tmp_path / "ref.onnx")
    lowered = target.lower(ref.path, "fp32", load_profile("x86-64"), None, tmp_path,
                           LowerOptions())
    with target.runner(tmp_path / lowered.model_file, list(ref.inputs), 1) as runner:
        with pytest.raises(Exception, match=r"input 'input' got float32\[1, 32, 32, 3\]"):
            runner.infer({"input": np.zeros((1, 32, 32, 3), np.float32)})
