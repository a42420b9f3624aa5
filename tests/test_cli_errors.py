"""Bad input: one line on stderr, exit code 2, no traceback, and nothing written."""

import numpy as np
import pytest

from tests.conftest import make_matmul_model


def _assert_clean_error(result, match, out_dir):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edgepack: error: ")
    assert match in lines[0]
    assert "Traceback" not in result.stderr
    assert not out_dir.exists()
    assert not list(out_dir.parent.glob(".edgepack-build-*"))


@pytest.fixture
def good_model(tmp_path):
    return make_matmul_model(tmp_path / "tiny.onnx")


def test_missing_model(cli, tmp_path):
    out = tmp_path / "dist"
    r = cli("build", tmp_path / "nope.onnx", "--target", "ort", "-o", out)
    _assert_clean_error(r, "does not exist", out)


def test_text_file_named_onnx(cli, tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_text("hello, I am a text file\n" * 20)
    out = tmp_path / "dist"
    _assert_clean_error(cli("build", bad, "--target", "ort", "-o", out), "ONNX model", out)


def test_truncated_onnx(cli, tmp_path, samples):
    data = (samples / "mobilenet_digits.onnx").read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 3])
    out = tmp_path / "dist"
    _assert_clean_error(cli("build", cut, "--target", "ort", "-o", out), "ONNX model", out)


def test_unknown_profile(cli, tmp_path, good_model):
    out = tmp_path / "dist"
    r = cli("build", good_model, "--profile", "rpi9", "-o", out)
    _assert_clean_error(r, "unknown profile 'rpi9'", out)


def test_unknown_target(cli, tmp_path, good_model):
    out = tmp_path / "dist"
    r = cli("build", good_model, "--target", "coreml", "-o", out)
    _assert_clean_error(r, "unknown target 'coreml'; known targets: openvino, ort, tflite", out)


def test_unknown_precision(cli, tmp_path, good_model):
    out = tmp_path / "dist"
    r = cli("build", good_model, "--target", "ort", "--precision", "int4", "-o", out)
    _assert_clean_error(r, "--precision: 'int4' is not valid; it must be one of fp32", out)


def test_data_shape_mismatch(cli, tmp_path, samples):
    data = tmp_path / "d.npz"
    np.savez(data, input=np.zeros((4, 32, 32, 3), np.float32))  # NHWC instead of NCHW
    out = tmp_path / "dist"
    r = cli("build", samples / "mobilenet_digits.onnx", "--target", "ort", "--data", data,
            "-o", out)
    _assert_clean_error(r, "so pass [N, 3, 32, 32] or [N, 1, 3, 32, 32]", out)


def test_dynamic_dim_names_the_flag(cli, tmp_path):
    model = make_matmul_model(tmp_path / "dyn.onnx", batch="N")
    out = tmp_path / "dist"
    r = cli("build", model, "--target", "ort", "--precision", "fp32", "-o", out)
    _assert_clean_error(r, "--input-shape x=N,4", out)


def test_static_int8_refuses_synthetic_calibration(cli, tmp_path, good_model):
    out = tmp_path / "dist"
    r = cli("build", good_model, "--target", "ort", "--precision", "int8", "-o", out)
    _assert_clean_error(r, "--allow-synthetic-calibration", out)


def test_unsupported_format(cli, tmp_path):
    pt = tmp_path / "model.pt"
    pt.write_bytes(b"\x80\x02")
    out = tmp_path / "dist"
    _assert_clean_error(cli("build", pt, "-o", out), "export the model to ONNX", out)


def test_debug_shows_traceback(cli, tmp_path):
    r = cli("--debug", "build", tmp_path / "nope.onnx", "-o", tmp_path / "dist")
    assert r.returncode == 2 and "Traceback" in r.stderr


def test_verify_not_a_bundle(cli, tmp_path):
    r = cli("verify", tmp_path)
    assert r.returncode == 2 and "not an edgepack bundle" in r.stderr


def test_internal_error_is_exit_3_with_a_hint(cli, tmp_path, good_model):
    (tmp_path / "broken_target.py").write_text("TARGET = None  # not a Target: a bug\n")
    r = cli("build", good_model, "--target", "broken", "-o", tmp_path / "dist",
            env={"EDGEPACK_EXTRA_TARGETS": "broken=broken_target", "PYTHONPATH": str(tmp_path)})
    assert r.returncode == 3
    assert "Traceback" in r.stderr and "this is a bug in edgepack" in r.stderr
    assert not (tmp_path / "dist").exists()


def test_bad_preset_and_runs_with_min_time(cli, tmp_path, good_model):
    out = tmp_path / "dist"
    _assert_clean_error(cli("build", good_model, "--preset", "fast", "-o", out),
                        "--preset: 'fast' is not valid; it must be one of performance, mixed", out)
    _assert_clean_error(cli("build", good_model, "--runs", "5", "--min-time", "1", "-o", out),
                        "exclude each other", out)
