"""Bad input: one line on stderr, exit code 2, no traceback, and nothing written."""

import os
import zipfile

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import ROOT, make_matmul_model
from tests.helpers.media import audio_model, digit_folder, wav_folder, word_tokenizer, write_wav
from tests.helpers.models import token_embedding


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
    from edgepack.registry import target_names

    known = ", ".join(sorted(target_names()))
    assert "ort" in known and "openvino" in known
    _assert_clean_error(r, f"unknown target 'coreml'; known targets: {known}", out)


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
    _assert_clean_error(cli("build", pt, "-o", out), "is not a PyTorch file", out)
    other = tmp_path / "model.caffemodel"
    other.write_bytes(b"\x00")
    _assert_clean_error(cli("build", other, "-o", out), "unknown model format '.caffemodel'",
                        out)


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


# ---------------------------------------------------------------- inputs that gave tracebacks
def _profile(tmp_path, old, new, name="mine.toml"):
    """The x86-64 profile with ``old`` replaced by ``new`` (appended when ``old`` is None)."""
    src = (ROOT / "targets" / "x86-64.toml").read_text()
    assert old is None or old in src
    path = tmp_path / name
    path.write_text(src + "\n" + new + "\n" if old is None else src.replace(old, new))
    return path


def test_opset_too_new(cli, tmp_path, good_model):
    model = onnx.load(str(good_model))
    model.opset_import[0].version = 99
    bad = tmp_path / "op99.onnx"
    onnx.save(model, str(bad))
    out = tmp_path / "dist"
    _assert_clean_error(cli("build", bad, "--target", "ort", "-o", out),
                        "declares opset 99 of the default ONNX domain", out)


def test_missing_external_data(cli, tmp_path, good_model):
    model = onnx.load(str(good_model))
    for init in model.graph.initializer:
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init), init.name))
    folder = tmp_path / "m"
    folder.mkdir()
    onnx.save(model, str(folder / "ext.onnx"), save_as_external_data=True,
              location="ext.data", size_threshold=0)
    (folder / "ext.data").unlink()
    out = tmp_path / "dist"
    _assert_clean_error(cli("build", folder / "ext.onnx", "--target", "ort", "-o", out),
                        "keep the model's external data files beside it", out)


@pytest.mark.parametrize("member, match", [
    ("raw", "member 'x.txt' is not a numpy array"),
    ("object", "'x' has dtype object, not a numeric array"),
])
def test_npz_member_not_numeric(cli, tmp_path, good_model, member, match):
    data = tmp_path / "bad.npz"
    if member == "raw":
        with zipfile.ZipFile(data, "w") as z:
            z.writestr("x.txt", b"not an array")
    else:
        np.save(tmp_path / "x.npy", np.array([{"a": 1}] * 4, dtype=object), allow_pickle=True)
        with zipfile.ZipFile(data, "w") as z:
            z.write(tmp_path / "x.npy", "x.npy")
    out = tmp_path / "dist"
    r = cli("build", good_model, "--target", "ort", "--precision", "fp32", "--data", data,
            "-o", out)
    if member == "object":  # numpy refuses pickled objects itself: still one clean line
        match = "not a readable numpy file"
    _assert_clean_error(r, match, out)


def test_unreadable_profile(cli, tmp_path, good_model):
    folder = tmp_path / "dir.toml"
    folder.mkdir()
    out = tmp_path / "dist"
    _assert_clean_error(cli("build", good_model, "--profile", folder, "-o", out),
                        "is not a file", out)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    _assert_clean_error(cli("build", good_model, "--profile", binary, "-o", out),
                        "is not valid TOML", out)


@pytest.mark.parametrize("old, new, match", [
    ('runtimes = [', 'runtimes = ["onnxruntime", ',
     "'runtimes' lists 'onnxruntime', which is not a target"),
    ('glibc = "2.35"', 'glibc = "new"', "'glibc': 'new' is not a version"),
    (None, '[accuracy.int8]\nmin_cosine = true',
     "accuracy.int8.min_cosine: True is out of range"),
    ('arch = "x86_64"', 'arch = "riscv"', "'arch': 'riscv' is not valid"),
])
def test_profile_typos_are_errors(cli, tmp_path, good_model, old, new, match):
    profile = _profile(tmp_path, old, new)
    out = tmp_path / "dist"
    r = cli("build", good_model, "--profile", profile, "-o", out)
    _assert_clean_error(r, match, out)
    assert str(profile) in r.stderr


def test_output_naming_a_file(cli, tmp_path, good_model):
    out = tmp_path / "dist"
    out.write_text("I am a file")
    r = cli("build", good_model, "--target", "ort", "--precision", "fp32", "-o", out)
    assert r.returncode == 2 and "exists and is not a folder" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and out.read_text() == "I am a file"


def test_bad_input_creates_no_output_parents(cli, tmp_path):
    out = tmp_path / "a" / "b" / "dist"
    r = cli("build", tmp_path / "missing.onnx", "-o", out)
    assert r.returncode == 2
    assert not (tmp_path / "a").exists()


def test_empty_target_list(cli, tmp_path, good_model):
    out = tmp_path / "dist"
    _assert_clean_error(cli("build", good_model, "--target", "", "-o", out),
                        "--target names no target", out)


def test_reference_with_nan_outputs(cli, tmp_path, good_model):
    model = onnx.load(str(good_model))
    w = next(i for i in model.graph.initializer if i.name == "W")
    arr = numpy_helper.to_array(w).copy()
    arr[0, 0] = np.nan
    w.CopyFrom(numpy_helper.from_array(arr, "W"))
    bad = tmp_path / "nan.onnx"
    onnx.save(model, str(bad))
    out = tmp_path / "dist"
    r = cli("build", bad, "--target", "ort", "--precision", "fp32", "-o", out)
    _assert_clean_error(r, "NaN or infinite value(s) of 96 in output 'logits'", out)


def test_reference_run_failure_is_a_model_error(cli, tmp_path):
    # a graph that passes onnx's checker but that ONNX Runtime cannot run: a Reshape to a
    # size that does not fit its input
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [5, 5])
    graph = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"])], "bad",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [5, 5])],
                              initializer=[shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "reshape.onnx"
    onnx.save(model, str(path))
    out = tmp_path / "dist"
    _assert_clean_error(cli("build", path, "--target", "ort", "--precision", "fp32", "-o", out),
                        "ONNX Runtime cannot run the model on these inputs", out)


# --------------------------------------------------------------------------- data as users have it
def test_a_folder_with_no_images(cli, tmp_path, samples):
    photos = tmp_path / "photos"
    (photos / "cat").mkdir(parents=True)
    (photos / "cat" / "notes.txt").write_text("not an image")
    out = tmp_path / "dist"
    digits = samples / "mobilenet_digits.onnx"
    r = cli("build", digits, "--target", "ort", "--data", photos, "-o", out)
    _assert_clean_error(r, f"--data {photos}: class folder 'cat' holds no images or WAV files", out)
    empty = tmp_path / "empty"
    empty.mkdir()
    r = cli("build", digits, "--target", "ort", "--eval", empty, "-o", out)
    _assert_clean_error(r, f"--eval {empty}: a folder with no images or WAV files", out)


def test_a_corrupt_png(cli, tmp_path, samples):
    digit_folder(tmp_path / "photos", per_class=2)
    bad = tmp_path / "photos" / "1" / "9999.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    out = tmp_path / "dist"
    r = cli("build", samples / "mobilenet_digits.onnx", "--target", "ort", "--precision", "fp32",
            "--data", tmp_path / "photos", "-o", out)
    _assert_clean_error(r, f"{bad}: not a readable image", out)


def test_a_wav_of_the_wrong_sample_rate(cli, tmp_path):
    model = audio_model(tmp_path / "audio.onnx")
    clips = wav_folder(tmp_path / "clips")
    write_wav(clips / "tone" / "slow.wav", np.zeros(8000), rate=8000)
    out = tmp_path / "dist"
    r = cli("build", model, "--target", "ort", "--precision", "fp32", "--data", clips,
            "--preprocess", "sample_rate=16000", "-o", out)
    _assert_clean_error(r, "slow.wav is sampled at 8000 Hz; the model takes 16000 Hz (nothing "
                        "is resampled", out)
    r = cli("build", model, "--target", "ort", "--precision", "fp32", "--data", clips, "-o", out)
    _assert_clean_error(r, "the WAV files have different sample rates: 8000 Hz (slow.wav), "
                        "16000 Hz", out)


def test_a_text_file_without_a_tokenizer(cli, tmp_path):
    model = token_embedding(tmp_path / "text.onnx")
    lines = tmp_path / "lines.txt"
    lines.write_text("the cat sat on a mat\n")
    out = tmp_path / "dist"
    r = cli("build", model, "--target", "ort", "--precision", "fp32", "--data", lines, "-o", out)
    _assert_clean_error(r, "a .txt file's lines become token ids by a tokenizer: pass "
                        "--tokenizer FILE", out)
    blocker = tmp_path / "site"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['tokenizers'] = None\n")
    r = cli("build", model, "--target", "ort", "--precision", "fp32", "--data", lines,
            "--tokenizer", word_tokenizer(tmp_path / "tokenizer.json"), "-o", out,
            env={"PYTHONPATH": f"{blocker}{os.pathsep}{ROOT}"})
    _assert_clean_error(r, "text data (a .txt file) needs the 'tokenizers' package, which is "
                        "not installed; install it with: pip install 'edgepack[data]'", out)


def test_preprocessing_the_data_does_not_use(cli, tmp_path, samples):
    out = tmp_path / "dist"
    r = cli("build", samples / "mobilenet_digits.onnx", "--target", "ort", "--data",
            samples / "mobilenet_digits.npz", "--preprocess", "mean=0.5", "-o", out)
    _assert_clean_error(r, "--preprocess mean applies to a folder of images; the data given is "
                        ".npz/.npy arrays", out)
