"""The onnxfile target's own test (copied to tests/targets/test_onnxfile.py; named so that
pytest skips it here)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_onnxfile_builds_and_verifies(tmp_path):
    out = tmp_path / "dist"
    r = subprocess.run([sys.executable, "-m", "edgepack", "build",
                        ROOT / "sample_models" / "mobilenet_digits.onnx", "--profile", "x86-64",
                        "--target", "onnxfile", "--precision", "fp32", "--data",
                        ROOT / "sample_models" / "mobilenet_digits.npz", "--runs", "5",
                        "-o", out], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "mobilenet_digits" / "report.json").read_text())
    (cell,) = report["cells"]
    assert cell["status"] == "ok" and cell["accuracy"]["outputs"]["logits"]["cosine"] > 0.99999
