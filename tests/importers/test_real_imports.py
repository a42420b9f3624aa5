"""Real models in framework formats (benchmarks/importers.py): all-MiniLM-L6-v2 as a PyTorch
entry point, fer's emotion CNN as a legacy Keras .hdf5 and as a quantized .tflite; every
target verified against the model's own framework."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_real_framework_models_verify_on_every_target(tmp_path):
    r = subprocess.run([sys.executable, "-m", "benchmarks.importers", "--runs", "5",
                        "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                       timeout=3000)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    results = {m["model"]: m for m in json.loads((tmp_path / "importers.json").read_text())}
    for name in ("minilm_torch", "fer_keras_hdf5", "fer_tflite_quantized"):
        cells = {c["target"]: c for c in results[name]["cells"]}
        assert set(cells) == {"ort", "openvino", "tflite"}
        assert all(c["status"] == "ok" for c in cells.values()), cells
    minilm = {c["target"]: c for c in results["minilm_torch"]["cells"]}
    assert all(c["cosine"] >= 0.999 for c in minilm.values())
    assert results["minilm_torch"]["stages"][0]["format"] == "torch"
    tflite = {c["target"]: c for c in results["fer_tflite_quantized"]["cells"]}["tflite"]
    assert tflite["strategy"].startswith("original .tflite")
