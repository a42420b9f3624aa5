"""The tflite target: onnx2tf in its own pinned environment, every file verified."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgepack.artifact import TensorSpec
from edgepack.profiles import load_profile
from edgepack.targets.tflite import bind
from tests.conftest import ROOT, build_sample, fake_env, run_cli, selftest_extracted
from tests.helpers.reports import cells_by_key, read_report

SAMPLES = ROOT / "sample_models"


@pytest.fixture(scope="module")
def tflite_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("tfl") / "dist"
    r = build_sample("mobilenet_digits", out, "--profile", "rpi4", "--target", "tflite",
                     "--precision", "fp32,fp16,int8-dynamic,int8")
    return r, out


def test_four_precisions_verify_and_attempts_are_recorded(tflite_build):
    r, out = tflite_build
    assert r.returncode == 0, r.stderr
    cells = cells_by_key(read_report(out, "mobilenet_digits"))
    top1 = {}
    for precision in ("fp32", "fp16", "int8-dynamic", "int8"):
        cell = cells[f"rpi4/tflite-{precision}"]
        assert cell["status"] == "ok", cell["reason"]
        assert cell["accuracy"]["data"] == "labelled"
        top1[precision] = cell["accuracy"]["outputs"]["logits"]["top1"]
        accepted = [a for a in cell["attempts"] if a["outcome"] == "accepted"]
        assert len(accepted) == 1 and accepted[0]["strategy"].startswith("onnx2tf-")
        assert "cosine" in accepted[0]["accuracy"]["logits"]
        assert any(accepted[0]["strategy"] in note for note in cell["notes"])
        for attempt in cell["attempts"]:
            assert attempt["outcome"] in ("accepted", "rejected", "skipped")
            assert (attempt["reason"] is None) == (attempt["outcome"] == "accepted")
    assert (top1["fp32"] - top1["int8"]) * 100 <= 1.0


def test_manifest_records_layout_mapping(tflite_build):
    _, out = tflite_build
    manifest = json.loads((out / "mobilenet_digits" / "rpi4" / "tflite-int8" / "manifest.json")
                          .read_text())
    (inp,) = manifest["inputs"]
    assert (inp["name"], inp["layout"], inp["shape"]) == ("input", "NCHW", [1, 3, 32, 32])
    assert (inp["runtime_layout"], inp["runtime_shape"]) == ("NHWC", [1, 32, 32, 3])
    assert inp["transpose"] == [0, 2, 3, 1] and inp["onnx_name"] == "input"
    assert "ai-edge-litert==" in (out / "mobilenet_digits" / "rpi4" / "tflite-int8" /
                                  "requirements.txt").read_text()


def test_selftest_needs_only_litert_and_numpy(tflite_build, tmp_path):
    _, out = tflite_build
    r = selftest_extracted(out / "mobilenet_digits" / "rpi4" / "tflite-int8.tar.gz", tmp_path,
                           "ai_edge_litert", ("onnxruntime", "openvino"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "selftest passed on ai-edge-litert" in r.stdout


def test_int8_io_records_quantization_and_runs(tmp_path):
    out = tmp_path / "dist"
    r = run_cli("build", SAMPLES / "digits_cnn.onnx", "--profile", "rpi5", "--target", "tflite",
                "--precision", "int8", "--int8-io", "--data", SAMPLES / "digits_cnn.npz",
                "--calib", SAMPLES / "digits_cnn_calib.npz", "--runs", "5", "-o", out,
                "--min-speedup", "0")
    assert r.returncode == 0, r.stderr
    bundle = out / "digits_cnn" / "rpi5" / "tflite-int8"
    manifest = json.loads((bundle / "manifest.json").read_text())
    for t in manifest["inputs"] + manifest["outputs"]:
        assert t["runtime_dtype"] == "int8" and t["quantization"]["scale"] > 0
    assert run_cli("verify", bundle).returncode == 0


def test_wrong_tflite_is_rejected_by_verification(tmp_path):
    out = tmp_path / "dist"
    r = run_cli("build", SAMPLES / "mobilenet_digits.onnx", "--profile", "rpi4",
                "--target", "wrongtflite", "--precision", "fp32", "--data",
                SAMPLES / "mobilenet_digits.npz", "--runs", "5", "-o", out,
                env=fake_env())
    assert r.returncode == 1, r.stderr
    cell = cells_by_key(read_report(out, "mobilenet_digits"))["rpi4/wrongtflite-fp32"]
    assert cell["status"] == "failed" and "attempts rejected" in cell["reason"]
    produced = [a for a in cell["attempts"] if "accuracy" in a]
    assert produced, cell["attempts"]  # the converter did write files (exit code 0) ...
    for attempt in produced:  # ... and verification rejected each one, with its numbers
        assert attempt["outcome"] == "rejected"
        assert attempt["reason"].startswith("accuracy outside budget")
        assert attempt["kept"].startswith("failed/rpi4/wrongtflite-fp32/")
        assert attempt["accuracy"]["logits"]["rel_error"] > 0.01
    assert not (out / "mobilenet_digits" / "rpi4" / "wrongtflite-fp32").exists()


def test_missing_toolchain_names_the_install_command(tmp_path):
    out = tmp_path / "dist"
    r = run_cli("build", SAMPLES / "digits_cnn.onnx", "--target", "tflite", "-o", out,
                env={"EDGEPACK_CACHE_DIR": str(tmp_path / "empty-cache")})
    assert r.returncode == 2
    assert r.stderr.strip().endswith("run: edgepack toolchain install tflite")
    assert not out.exists()


def test_toolchain_list_and_main_env_pip_check():
    r = run_cli("toolchain", "list")
    assert r.returncode == 0 and "onnx2tf-1.29.24" in r.stdout and "installed" in r.stdout
    check = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout


def test_bind_by_name_through_renames_and_reordering():
    specs = [TensorSpec("image", "float32", (1, 3, 8, 8), "NCHW"),
             TensorSpec("mask", "float32", (1, 3, 8, 8), "NCHW")]
    details = [  # the converter swapped them and renamed both
        {"name": "serving_default_mask:0", "shape": np.array([1, 8, 8, 3]), "dtype": np.float32,
         "quantization": (0.0, 0), "index": 0},
        {"name": "serving_default_image:0", "shape": np.array([1, 8, 8, 3]),
         "dtype": np.float32, "quantization": (0.0, 0), "index": 1},
    ]
    entries, notes = bind(specs, details)
    assert [e["runtime_name"] for e in entries] == ["serving_default_image:0",
                                                     "serving_default_mask:0"]
    assert all(e["transpose"] == [0, 2, 3, 1] for e in entries)
    assert "bound by name" in notes[0]


def test_bind_by_shape_when_names_are_lost():
    specs = [TensorSpec("logits", "float32", (1, 10)), TensorSpec("feat", "float32", (1, 4, 2, 2))]
    details = [{"name": "Identity_1", "shape": np.array([1, 2, 2, 4]), "dtype": np.int8,
                "quantization": (0.5, -3), "index": 7},
               {"name": "Identity", "shape": np.array([1, 10]), "dtype": np.float32,
                "quantization": (0.0, 0), "index": 6}]
    entries, _ = bind(specs, details)
    assert entries[0]["runtime_name"] == "Identity" and entries[0]["transpose"] is None
    assert entries[1]["runtime_name"] == "Identity_1"
    assert entries[1]["quantization"] == {"scale": 0.5, "zero_point": -3}


def test_failed_conversion_is_cached_with_its_reason(tmp_path, monkeypatch):
    from edgepack.targets.base import LowerContext, Strategy
    from edgepack.targets.tflite import TfliteTarget, strategy_name
    from edgepack.toolchains import Toolchain
    from tests.conftest import make_matmul_model

    monkeypatch.setenv("EDGEPACK_CACHE_DIR", str(tmp_path / "cache"))
    chain = Toolchain("broken-1.0", "tflite", ((3, 0), (3, 99)), "0 GB", "onnx2tf")
    chain.bin.mkdir(parents=True)
    script = chain.bin / "onnx2tf"
    script.write_text("#!/bin/sh\necho 'converter broke' >&2\nexit 1\n")
    script.chmod(0o755)
    target = TfliteTarget()
    target.toolchains = (chain,)
    model = make_matmul_model(tmp_path / "m.onnx")
    ctx = LowerContext(strategy=Strategy(strategy_name(chain), toolchain=chain.name),
                       cache_dir=str(tmp_path / "work"),
                       timeout=60, log=str(tmp_path / "cell.log"))
    for attempt in range(2):  # the second cell reuses the run, and its failure
        out = tmp_path / f"out{attempt}"
        out.mkdir()
        with pytest.raises(RuntimeError, match="wrote no model_float32.tflite "
                           r"\(broken-1.0 tf_converter exited with code 1\)"):
            target.lower(model, "fp32", load_profile("x86-64"), None, out, ctx)
    assert (tmp_path / "cell.log").read_text().count("converter broke") == 1
