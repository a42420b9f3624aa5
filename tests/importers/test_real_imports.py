"""Real models in framework formats (benchmarks/importers.py): all-MiniLM-L6-v2 as a PyTorch
entry point, fer's emotion CNN as a legacy Keras .hdf5 and as a quantized .tflite; every
target verified against the model's own framework. (MiniLM through onnx2tf is verified on real
sentences by tests/targets/test_tflite_minilm.py; it is not converted twice here.)"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def _importers(out, models: str, targets: str) -> dict:
    r = subprocess.run([sys.executable, "-m", "benchmarks.importers", "--models", models,
                        "--targets", targets, "--runs", "5", "--out", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=3000)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return {m["model"]: m for m in json.loads((out / "importers.json").read_text())}


def _cells(result: dict, targets: set[str]) -> dict:
    cells = {c["target"]: c for c in result["cells"]}
    assert set(cells) == targets
    assert all(c["status"] == "ok" for c in cells.values()), cells
    return cells


@pytest.mark.slow
def test_real_framework_models_verify_on_every_target(tmp_path):
    every = {"ort", "openvino", "tflite"}
    fer = _importers(tmp_path / "fer", "fer_keras_hdf5,fer_tflite_quantized", ",".join(every))
    _cells(fer["fer_keras_hdf5"], every)
    tflite = _cells(fer["fer_tflite_quantized"], every)["tflite"]
    assert tflite["strategy"].startswith("original .tflite")
    minilm = _importers(tmp_path / "minilm", "minilm_torch", "ort,openvino")["minilm_torch"]
    assert all(c["cosine"] >= 0.999 for c in _cells(minilm, {"ort", "openvino"}).values())
    assert minilm["stages"][0]["format"] == "torch"
