"""The openvino target end to end, beside ort, on the 3-channel sample with real labels."""

from __future__ import annotations

import json

import pytest

from tests.conftest import build_sample, run_cli, selftest_extracted
from tests.helpers.reports import cells_by_key, read_report


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    out = tmp_path_factory.mktemp("ov") / "dist"
    r = build_sample("mobilenet_digits", out, "--profile", "x86-64,rpi5", "--target",
                     "ort,openvino", "--precision", "fp32,fp16,int8-dynamic,int8")
    return r, out


def test_all_openvino_cells_verify_with_labels(both):
    r, out = both
    assert r.returncode == 0, r.stderr
    cells = cells_by_key(read_report(out, "mobilenet_digits"))
    for precision in ("fp32", "fp16", "int8-dynamic", "int8"):
        cell = cells[f"x86-64/openvino-{precision}"]
        assert cell["status"] == "ok", cell["reason"]
        assert cell["accuracy"]["data"] == "labelled"
        assert cell["latency"]["p50"] > 0 and cell["latency"]["threads"] == 2
    top1 = lambda c: c["accuracy"]["outputs"]["logits"]["top1"]  # noqa: E731
    fp32, int8 = cells["x86-64/openvino-fp32"], cells["x86-64/openvino-int8"]
    assert (top1(fp32) - top1(int8)) * 100 <= 1.0
    assert "nncf.quantize" in " ".join(int8["notes"])


def test_one_report_compares_runtimes(both):
    r, out = both
    assert "fp32 (device-default) [" in r.stderr  # the terminal table shows what ran
    report = read_report(out, "mobilenet_digits")
    targets = {(c["profile"], c["target"]) for c in report["cells"] if c["status"] == "ok"}
    assert targets == {(p, t) for p in ("x86-64", "rpi5") for t in ("ort", "openvino")}
    md = (out / "mobilenet_digits" / "report.md").read_text()
    assert "| x86-64 | ort | fp32 |" in md and "| x86-64 | openvino | fp32 [f32] |" in md


def test_fp32_is_pinned_to_f32_and_device_default_is_measured(both):
    _, out = both
    cells = cells_by_key(read_report(out, "mobilenet_digits"))
    fp32 = cells["rpi5/openvino-fp32"]
    assert "float32" in fp32["runtime"]["inference_precision"]
    manifest = json.loads((out / "mobilenet_digits" / fp32["bundle"] / "manifest.json")
                          .read_text())
    options = manifest["runtime"]["options"]
    assert options["openvino_config"] == {"INFERENCE_PRECISION_HINT": "f32",
                                          "DYNAMIC_QUANTIZATION_GROUP_SIZE": "0"}
    assert options["device_inference_precision"] == "f32"
    default = cells["rpi5/openvino-fp32-device-default"]
    assert default["status"] == "ok" and default["accuracy"]["budget"]["min_cosine"] == 0.999
    dm = json.loads((out / "mobilenet_digits" / default["bundle"] / "manifest.json").read_text())
    assert dm["runtime"]["options"]["device_inference_precision"] == "f16"
    # the x86-64 profile's AVX2 device runs f32 by default: no extra row
    assert "x86-64/openvino-fp32-device-default" not in cells


def test_requirements_and_readme_for_arm(both):
    _, out = both
    bundle = out / "mobilenet_digits" / "rpi5" / "openvino-int8"
    assert "openvino==" in (bundle / "requirements.txt").read_text()
    assert "glibc >= 2.35" in (bundle / "README.md").read_text()


def test_selftest_needs_only_openvino_and_numpy(both, tmp_path):
    _, out = both
    r = selftest_extracted(out / "mobilenet_digits" / "rpi5" / "openvino-int8.tar.gz", tmp_path,
                           "openvino", ("onnxruntime", "ai_edge_litert"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "selftest passed on openvino" in r.stdout


def test_old_glibc_profile_is_refused(tmp_path, samples):
    out = tmp_path / "dist"
    r = run_cli("build", samples / "digits_cnn.onnx", "--profile", "generic-arm64",
                "--target", "openvino", "-o", out)
    assert r.returncode == 2
    assert "glibc" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_device_default_variant_only_where_the_cpu_computes_fp16():
    """The A76 (rpi5) has half-precision arithmetic, so OpenVINO's CPU default is f16 there
    and fp32 gets a measured device-default row; the A72 (rpi4) and x86 run f32 by default."""
    from edgepack.profiles import load_profile
    from edgepack.targets.openvino import DEVICE_DEFAULT, OpenvinoTarget

    target = OpenvinoTarget()
    assert target.variants("fp32", load_profile("rpi5")) == [None, DEVICE_DEFAULT]
    for name in ("rpi4", "x86-64"):
        assert target.variants("fp32", load_profile(name)) == [None]
    assert target.variants("fp16", load_profile("rpi5")) == [None]
