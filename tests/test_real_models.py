"""A subset of the public real-model suite (benchmarks/real_models): real PyPI models with
real-looking inputs, fp32 on every target."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_public_suite_subset_verifies_fp32_everywhere(tmp_path):
    r = subprocess.run([sys.executable, "-m", "benchmarks.real_models", "--models",
                        "ocr_cls,streaming_gru", "--precisions", "fp32", "--runs", "5",
                        "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                       timeout=3000)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    results = {m["model"]: m for m in json.loads((tmp_path / "results.json").read_text())}
    for name in ("ocr_cls", "streaming_gru"):
        cells = {c["target"]: c for c in results[name]["cells"]}
        assert set(cells) == {"ort", "openvino", "tflite", "ncnn"}
        for cell in cells.values():
            assert cell["status"] == "ok", cell["reason"]
            assert cell["cosine"] > 0.9999
    cls = {c["target"]: c for c in results["ocr_cls"]["cells"]}
    assert all(c["top1"][0] == c["top1"][1] > 0.9 for c in cls.values())  # upright vs flipped
    assert "| ocr_cls | tflite | fp32 | verified |" in r.stdout
