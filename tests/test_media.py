"""Data as users have it: image folders, WAV folders and text files, read with a preprocessing
that is declared or inferred from the model's input, recorded in the report and the manifest,
and applied again by the bundle's run.py on an image or WAV file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from edgepack import media
from edgepack.artifact import TensorSpec
from edgepack.data import load_dataset, plan_reading
from edgepack.device import core
from edgepack.errors import DataError, MissingExtraError, UsageError
from edgepack.preprocessing import APPLIES, note, resolve
from tests.conftest import NO_ESTIMATE, NO_SPEED_GATE, SAMPLES, run_cli
from tests.helpers.media import (
    RATE,
    audio_model,
    digit_folder,
    digit_pixels,
    wav_folder,
    word_tokenizer,
    write_wav,
)
from tests.helpers.models import token_embedding

DIGITS = SAMPLES / "mobilenet_digits.onnx"
NORMALISED = ("--preprocess", "mean=0.5", "--preprocess", "std=0.5")  # how it was trained


def _digits(indices) -> tuple[np.ndarray, np.ndarray]:
    """Samples of mobilenet_digits.npz as ``[N, 1, 3, 32, 32]``, and their labels."""
    with np.load(SAMPLES / "mobilenet_digits.npz") as z:
        return z["input"][indices][:, None], z["labels"][indices]


def _ort(model: Path, feeds: dict) -> np.ndarray:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


# --------------------------------------------------------------------------- the arithmetic
def test_resize_keeps_constants_and_averages_when_shrinking():
    flat = np.full((40, 60, 3), 7.0)
    assert np.allclose(core.resize_bilinear(flat, 13, 21), 7.0)
    checker = np.indices((8, 8)).sum(axis=0)[..., None] % 2 * 255.0
    assert np.allclose(core.resize_bilinear(checker, 4, 4), 127.5)  # 2x2 blocks averaged
    ramp = np.arange(4.0)[None, :, None].repeat(2, axis=0)
    assert np.allclose(core.resize_bilinear(ramp, 2, 8)[0, :, 0],
                       [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3])  # half-pixel centres


def test_fit_image_resizes_the_shorter_side_then_crops_the_centre():
    img = np.zeros((40, 80, 3))
    img[:, 20:60] = 1.0  # the centre half of a wide image
    out = core.fit_image(img, 16, 16, resize=16, crop="center")
    assert out.shape == (16, 16, 3) and np.allclose(out, 1.0)
    assert core.fit_image(img, 16, 16, resize=16, crop="none")[:, 0].max() == 0.0  # stretched


def test_image_sample_channels_scale_normalise_layout_dtype():
    pixels = np.zeros((2, 2, 3), np.uint8)
    pixels[..., 0], pixels[..., 2] = 255, 51
    prep = {"size": [2, 2], "resize": 2, "crop": "center", "scale": 1 / 255, "mean": [0.5] * 3,
            "std": [0.5] * 3, "channels": "BGR", "layout": "NCHW"}
    x = core.image_sample(pixels, prep, [1, 3, 2, 2], "float32")
    assert x.dtype == np.float32 and x.shape == (1, 3, 2, 2)
    assert np.allclose(x[0, :, 0, 0], [51 / 255 * 2 - 1, -1, 1])  # B, G, R
    grey = core.image_sample(pixels, {**prep, "channels": "GRAY", "scale": 1.0, "mean": [0],
                                      "std": [1], "layout": "NHWC"}, [2, 2, 1], "uint8")
    assert grey.dtype == np.uint8 and grey[0, 0, 0] == round(255 * 0.299 + 51 * 0.114)


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_wav_files_of_every_pcm_width_read_alike(tmp_path, width):
    x = np.linspace(-0.5, 0.5, 101)
    pcm = np.round(x * (2 ** (8 * width - 1) - 1)).astype(np.int64)
    raw = (pcm + 128).astype(np.uint8).tobytes() if width == 1 else b"".join(
        int(v).to_bytes(width, "little", signed=True) for v in pcm)
    stereo = b"".join(raw[i:i + width] * 2 for i in range(0, len(raw), width))
    with wave.open(str(tmp_path / "a.wav"), "wb") as f:
        f.setnchannels(2)
        f.setsampwidth(width)
        f.setframerate(8000)
        f.writeframes(stereo)
    rate, samples = core.read_wav(tmp_path / "a.wav")
    assert rate == 8000 and np.allclose(samples, x, atol=2 / 2 ** (8 * width - 1) + 1e-9)


# --------------------------------------------------------------------------- what is inferred
def test_an_imagenet_shaped_input_is_inferred_and_mean_std_left_at_identity():
    record = resolve("image", [TensorSpec("input", "float32", (1, 3, 224, 224))], {})
    assert record | {"scale": round(record["scale"], 12)} == {
        "kind": "image", "input": "input", "size": [224, 224], "resize": 224, "crop": "center",
        "scale": round(1 / 255, 12), "mean": [0.0] * 3, "std": [1.0] * 3, "channels": "RGB",
        "layout": "NCHW", "inferred": ["layout", "channels", "resize", "scale"],
        "defaults": ["mean", "std"], "given": []}
    said = note(record)
    assert "assumed from its shape: layout NCHW, channels RGB, resize the shorter side to 224 " \
           "px, centre-crop 224x224, scale 1/255" in said
    assert "mean and std cannot be told from the model: left at mean 0 and std 1" in said


@pytest.mark.parametrize("spec, given, expect", [
    (TensorSpec("x", "uint8", (1, 96, 128, 3)), {}, {"layout": "NHWC", "scale": 1.0,
                                                     "size": [96, 128], "resize": 128}),
    (TensorSpec("x", "float32", (1, 1, 28, 28)), {}, {"channels": "GRAY", "mean": [0.0]}),
    (TensorSpec("x", "float32", (3, 32, 32)), {"channels": "BGR", "resize": 40,
                                               "mean": (0.1, 0.2, 0.3)},
     {"channels": "BGR", "resize": 40, "mean": [0.1, 0.2, 0.3], "given": ["resize", "mean",
                                                                           "channels"]}),
])
def test_image_inputs_of_other_shapes(spec, given, expect):
    record = resolve("image", [spec], given)
    assert {k: record[k] for k in expect} == expect


@pytest.mark.parametrize("spec, given, match", [
    (TensorSpec("x", "float32", (1, 5, 5, 5)), {}, "is not an image input edgepack can tell"),
    (TensorSpec("x", "float32", (4, 3, 8, 8)), {}, "one image per sample"),
    (TensorSpec("x", "int64", (1, 3, 8, 8)), {}, "float or unsigned integer input"),
    (TensorSpec("x", "float32", (1, 3, 8, 8)), {"mean": (1.0, 2.0)}, "mean has 2 values"),
    (TensorSpec("x", "float32", (1, 3, 8, 8)), {"resize": 4}, "resize=4 is smaller"),
    (TensorSpec("x", "float32", (1, 3, 8, 8)), {"channels": "GRAY"}, "has 3 channel"),
])
def test_image_inputs_edgepack_cannot_feed(spec, given, match):
    with pytest.raises(DataError, match=match):
        resolve("image", [spec], given)


def test_audio_and_text_records():
    audio = resolve("audio", [TensorSpec("w", "float32", (1, 1, 16000))], {"frame_length": 8000},
                    rates={16000: Path("a.wav")})
    assert (audio["sample_rate"], audio["frame_length"], audio["length"]) == (16000, 8000, 16000)
    assert audio["inferred"] == ["sample_rate"] and "assumed from the files" in note(audio)
    with pytest.raises(DataError, match="different sample rates: 8000 Hz .*16000 Hz"):
        resolve("audio", [TensorSpec("w", "float32", (1, 16000))], {},
                rates={16000: Path("a.wav"), 8000: Path("b.wav")})
    with pytest.raises(DataError, match="for features such as spectrograms pass an .npz"):
        resolve("audio", [TensorSpec("w", "float32", (1, 49, 40))], {}, rates={})
    specs = [TensorSpec(n, "int64", (1, 8)) for n in ("input_ids", "token_type_ids",
                                                       "attention_mask")]
    text = resolve("text", specs, {"max_tokens": 5}, tokenizer={"pad_id": 0})
    assert text["inputs"] == {"ids": "input_ids", "mask": "attention_mask",
                              "type_ids": "token_type_ids"}
    assert set(APPLIES) == {"image", "audio", "text"}


# --------------------------------------------------------------------------- reading folders
def test_an_image_folder_reproduces_the_arrays_it_was_made_from(tmp_path):
    order = digit_folder(tmp_path / "imgs", per_class=3)
    spec = [TensorSpec("input", "float32", (1, 3, 32, 32))]
    reading = plan_reading({"--data": tmp_path / "imgs"}, spec, {"mean": (0.5,), "std": (0.5,)})
    data = load_dataset(tmp_path / "imgs", spec, "--data", reading=reading)
    x, y = _digits(order)
    assert data.kind == "labelled" and data.source.endswith("(6 images in 2 class folders)")
    np.testing.assert_array_equal(data.arrays["input"], x)  # exactly: same pixels, same maths
    np.testing.assert_array_equal(data.labels, y)  # folders "0" and "1" are classes 0 and 1


def test_class_indices_from_sorted_names_a_labels_file_or_the_model(tmp_path):
    for name in ("dog", "cat"):
        (tmp_path / "d" / name).mkdir(parents=True)
        (tmp_path / "d" / name / "x.png").write_bytes(b"")
    folders = [media.scan(tmp_path / "d", "--data")]
    assert media.class_index(folders, None, {})["index"] == {"cat": 0, "dog": 1}
    labels = tmp_path / "labels.txt"
    labels.write_text("bird\ndog\ncat\n")
    found = media.class_index(folders, labels, {})
    assert found["index"] == {"cat": 2, "dog": 1} and "labels.txt" in found["from"]
    model = media.class_index(folders, None, {"names": "{0: 'dog', 1: 'cat', 2: 'cow'}"})
    assert model["index"] == {"cat": 1, "dog": 0} and "metadata 'names'" in model["from"]
    partial = media.class_index(folders, None, {"classes": '["dog", "emu"]'})
    assert partial["index"] == {"cat": 0, "dog": 1}  # the model's names miss a folder
    labels.write_text("bird\ndog\n")
    with pytest.raises(DataError, match="names no class 'cat'"):
        media.class_index(folders, labels, {})


def test_text_lines_become_ids_mask_and_type_ids(tmp_path):
    model = token_embedding(tmp_path / "text.onnx")
    tok = word_tokenizer(tmp_path / "tokenizer.json")
    lines = tmp_path / "lines.txt"
    lines.write_text("the cat sat on a mat\n\nthe dog ran far away from the cat\n")
    specs = [TensorSpec(n, "int64", (1, 8)) for n in ("input_ids", "token_type_ids",
                                                       "attention_mask")]
    reading = plan_reading({"--data": lines}, specs, {"max_tokens": 6}, tokenizer=tok)
    data = load_dataset(lines, specs, "--data", reading=reading)
    assert data.samples == 2 and data.kind == "unlabelled"
    np.testing.assert_array_equal(data.arrays["input_ids"][:, 0],
                                  [[2, 3, 4, 5, 6, 7, 0, 0], [2, 8, 9, 10, 11, 1, 0, 0]])
    np.testing.assert_array_equal(data.arrays["attention_mask"][1, 0], [1] * 6 + [0, 0])
    outputs = _ort(model, data.feed(0))
    assert outputs.shape == (1, 16) and np.isfinite(outputs).all()


def test_text_without_the_tokenizers_package_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'edgepack\[data\]'"):
        media.load_tokenizer(tmp_path / "tokenizer.json")


def test_options_the_data_does_not_use_are_refused(tmp_path):
    digit_folder(tmp_path / "imgs", per_class=1)
    spec = [TensorSpec("input", "float32", (1, 3, 32, 32))]
    cases = [({"--data": tmp_path / "imgs"}, {"sample_rate": 16000}, {},
              "--preprocess sample_rate applies to a folder of WAV files; the data given is a "
              "folder of images"),
             ({}, {"mean": (0.5,)}, {}, "the data given is .npz/.npy arrays (or none)"),
             ({"--data": tmp_path / "imgs"}, {}, {"tokenizer": tmp_path / "t.json"},
              "--tokenizer turns a .txt file's lines into token ids")]
    for paths, given, extra, match in cases:
        with pytest.raises(UsageError, match=match.replace("(", r"\(").replace(")", r"\)")):
            plan_reading(paths, spec, given, **extra)


# --------------------------------------------------------------------------- flags and config
def test_preprocess_flags_parse_fractions_lists_and_check_each_key(capsys, tmp_path):
    from edgepack.cli.app import main
    from edgepack.cli.build import flag_values

    flags = flag_values({"preprocessing": ["scale=1/255", "mean=0.485, 0.456,0.406",
                                           "resize=256", "channels=BGR"]})
    assert flags["preprocessing"] == {"scale": 1 / 255, "mean": (0.485, 0.456, 0.406),
                                      "resize": 256, "channels": "BGR"}
    model = tmp_path / "m.onnx"
    for value, said in [("resize=0", "--preprocess resize: 0 is out of range; it must be an "
                         "integer in [1, 16384] px"),
                        ("std=0.5,0", "--preprocess std: 0.0 is out of range"),
                        ("reisze=3", "--preprocess: unknown key 'reisze' (did you mean "
                         "'resize'?)"),
                        ("layout=CHW", "--preprocess layout: 'CHW' is not valid; it must be "
                         "one of NCHW, NHWC"),
                        ("mean", "--preprocess 'mean': write KEY=VALUE"),
                        ("sample_rate=16k", "--preprocess sample_rate: '16k' is not an integer")]:
        with pytest.raises(SystemExit) as e:
            main(["build", str(model), "--preprocess", value, "-o", str(tmp_path / "out")])
        err = capsys.readouterr().err.strip().splitlines()
        assert e.value.code == 2 and len(err) == 1 and said in err[0], err
    assert not (tmp_path / "out").exists()


def test_the_config_table_and_flags_merge_key_by_key(tmp_path):
    from edgepack.config import load_config, merged
    from edgepack.options import ConfigError

    config = tmp_path / "edgepack.toml"
    config.write_text('model = "m.onnx"\n[preprocessing]\nmean = [0.5, 0.5, 0.5]\nstd = 0.5\n')
    table = load_config(config).models[0]
    assert table["preprocessing"] == {"mean": (0.5, 0.5, 0.5), "std": (0.5,)}
    both = merged(table, {"preprocessing": {"resize": 40}})
    assert both["preprocessing"] == {"mean": (0.5, 0.5, 0.5), "std": (0.5,), "resize": 40}
    config.write_text('model = "m.onnx"\n[preprocessing]\nchannels = 3\n')
    with pytest.raises(ConfigError, match=r"preprocessing.channels: 3 is not a string \(images"):
        load_config(config)


def test_a_changed_image_changes_the_cache_key(tmp_path):
    from edgepack.options import build_options, cache_values

    digit_folder(tmp_path / "imgs", per_class=1)
    opts = build_options({"model": tmp_path / "m.onnx", "data": tmp_path / "imgs"})
    before = cache_values(opts, "prepare")["data"]
    (tmp_path / "imgs" / "1" / "extra.png").write_bytes(b"x")
    assert before and cache_values(opts, "prepare")["data"] != before


# --------------------------------------------------------------------------- builds
def _run_py(bundle: Path, *args) -> subprocess.CompletedProcess:
    """The bundle's run.py as the device runs it: no edgepack on the path."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "run.py", *map(str, args)], cwd=bundle,
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def image_build(tmp_path_factory):
    """mobilenet_digits (1x3x32x32) calibrated and evaluated on PNG folders of two digits."""
    root = tmp_path_factory.mktemp("images")
    calib = digit_folder(root / "calib", per_class=3, start=4)
    evaluation = digit_folder(root / "eval", per_class=4)
    r = run_cli("build", DIGITS, "--calib", root / "calib", "--eval", root / "eval",
                *NORMALISED, "--profile", "x86-64", "--target", "ort",
                "--precision", "fp32,int8", "--runs", "5", "-o", root / "dist",
                *NO_SPEED_GATE, *NO_ESTIMATE)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads((root / "dist" / "mobilenet_digits" / "report.json").read_text())
    return root, r, report, calib, evaluation


def test_image_folders_calibrate_and_evaluate_with_top1_from_folder_labels(image_build):
    root, r, report, calib, evaluation = image_build
    data = report["data"]
    assert data["classes"]["index"] == {"0": 0, "1": 1}
    assert "sorted sub-folder names" in data["classes"]["from"]
    assert (data["eval"]["kind"], data["eval"]["samples"]) == ("labelled", 8)
    assert (data["calib"]["samples"], data["in_sample"]) == (6, False)
    x, y = _digits(evaluation)
    expected = float(np.mean([_ort(DIGITS, {"input": x[i]}).argmax() == y[i]
                              for i in range(len(y))]))
    for cell in report["cells"]:
        assert cell["status"] == "ok", cell
        logits = cell["accuracy"]["outputs"]["logits"]
        assert logits["top1_reference"] == pytest.approx(expected)
        assert logits["top1"] is not None
    int8 = next(c for c in report["cells"] if c["precision"] == "int8")
    assert "calib" in int8["accuracy"]["source"] or "eval" in int8["accuracy"]["source"]


def test_the_report_the_terminal_and_the_manifest_record_the_preprocessing(image_build):
    root, r, report, calib, evaluation = image_build
    prep = report["data"]["preprocessing"]
    assert {k: prep[k] for k in ("kind", "input", "size", "resize", "crop", "mean", "std",
                                 "channels", "layout", "inferred", "given", "defaults")} == {
        "kind": "image", "input": "input", "size": [32, 32], "resize": 32, "crop": "center",
        "mean": [0.5] * 3, "std": [0.5] * 3, "channels": "RGB", "layout": "NCHW",
        "inferred": ["layout", "channels", "resize", "scale"], "given": ["mean", "std"],
        "defaults": []}
    assert prep["scale"] == pytest.approx(1 / 255)
    said = [ln for ln in r.stderr.splitlines() if "feeds input" in ln]  # one terminal line
    assert len(said) == 1 and said[0].startswith(
        "note: a folder of images feeds input 'input'; assumed from its shape: layout NCHW, "
        "channels RGB, resize the shorter side to 32 px, centre-crop 32x32, scale 1/255; "
        "given: mean 0.5, std 0.5; class indices: the sorted sub-folder names (0: 0, 1: 1)")
    assert any("assumed from its shape" in n for n in report["notes"])
    bundle = root / "dist" / "mobilenet_digits" / "x86-64" / "ort-fp32"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["preprocessing"] == prep
    golden = np.load(bundle / "golden" / "inputs.npz")["input"]
    np.testing.assert_array_equal(golden, _digits(evaluation)[0][:len(golden)])


def test_run_py_infer_takes_an_image_file(image_build, tmp_path):
    root, r, report, calib, evaluation = image_build
    bundle = root / "dist" / "mobilenet_digits" / "x86-64" / "ort-fp32"
    png = sorted((root / "eval" / "1").glob("*.png"))[0]
    done = _run_py(bundle, "infer", png, "-o", tmp_path / "out.npz")
    assert done.returncode == 0, done.stdout + done.stderr
    got = np.load(tmp_path / "out.npz")["logits"]
    want = _ort(DIGITS, {"input": _digits([int(png.stem)])[0][0]})
    np.testing.assert_allclose(got, want, atol=1e-5)
    # a photo of another size goes through the same resize and centre crop
    from PIL import Image

    Image.fromarray(digit_pixels(int(png.stem))).resize((64, 48)).save(tmp_path / "big.jpg")
    assert _run_py(bundle, "infer", tmp_path / "big.jpg", "-o", tmp_path / "b.npz").returncode == 0


def test_run_py_without_pillow_says_so_in_one_line(image_build, tmp_path):
    root = image_build[0]
    bundle = root / "dist" / "mobilenet_digits" / "x86-64" / "ort-fp32"
    png = sorted((root / "eval" / "0").glob("*.png"))[0]
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text("import sys\nsys.modules['PIL'] = None\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "run.py", "infer", str(png)], cwd=bundle,
                          capture_output=True, text=True, timeout=120,
                          env={**env, "PYTHONPATH": str(tmp_path)})
    assert done.returncode == 2 and done.stderr.strip() == (
        f"error: {png.name}: reading an image needs Pillow (pip install Pillow), or pass the "
        "input as .npz/.npy")
    wav = write_wav(tmp_path / "x.wav", np.zeros(100))
    done = _run_py(bundle, "infer", wav)
    assert done.returncode == 2 and "declares no audio preprocessing (it was built from " \
        "images)" in done.stderr
    assert (bundle / "requirements.txt").read_text().count("illow") == 0
    assert "python run.py infer photo.jpg" in (bundle / "README.md").read_text()


@pytest.fixture(scope="module")
def audio_build(tmp_path_factory):
    """A 1-D convolution over 16000 samples, calibrated and evaluated on WAV folders."""
    root = tmp_path_factory.mktemp("audio")
    model = audio_model(root / "audio.onnx")
    wav_folder(root / "calib", seed=1)
    wav_folder(root / "eval", seed=2)
    r = run_cli("build", model, "--calib", root / "calib", "--eval", root / "eval",
                "--profile", "x86-64", "--target", "ort", "--precision", "fp32,int8",
                "--runs", "5", "-o", root / "dist", *NO_SPEED_GATE, *NO_ESTIMATE)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads((root / "dist" / "audio" / "report.json").read_text())
    return root, model, r, report


def test_wav_folders_calibrate_and_evaluate_an_audio_model(audio_build):
    root, model, r, report = audio_build
    data = report["data"]
    prep = data["preprocessing"]
    assert (prep["kind"], prep["sample_rate"], prep["frame_length"]) == ("audio", RATE, RATE)
    assert prep["inferred"] == ["sample_rate", "frame_length"]
    assert data["classes"]["index"] == {"noise": 0, "tone": 1}
    assert (data["eval"]["kind"], data["eval"]["samples"], data["in_sample"]) == \
        ("labelled", 6, False)
    expected = []
    for label, folder in enumerate(("noise", "tone")):
        for wav in sorted((root / "eval" / folder).glob("*.wav")):
            rate, x = core.read_wav(wav)
            feed = core.audio_sample(x, rate, prep, [1, 1, RATE], "float32", wav.name)
            expected.append(_ort(model, {"waveform": feed}).argmax() == label)
    for cell in report["cells"]:
        assert cell["status"] == "ok", cell
        logits = cell["accuracy"]["outputs"]["logits"]
        assert logits["top1_reference"] == pytest.approx(float(np.mean(expected)))
    assert "a folder of WAV files feeds input 'waveform'" in " ".join(r.stderr.split())


def test_run_py_infer_takes_a_wav_file_and_refuses_another_rate(audio_build, tmp_path):
    root, model, r, report = audio_build
    bundle = root / "dist" / "audio" / "x86-64" / "ort-fp32"
    wav = sorted((root / "eval" / "tone").glob("*.wav"))[0]  # the short one: zero-padded
    done = _run_py(bundle, "infer", wav, "-o", tmp_path / "out.npz")
    assert done.returncode == 0, done.stdout + done.stderr
    rate, x = core.read_wav(wav)
    want = _ort(model, {"waveform": core.audio_sample(
        x, rate, report["data"]["preprocessing"], [1, 1, RATE], "float32", "")})
    np.testing.assert_allclose(np.load(tmp_path / "out.npz")["logits"], want, atol=1e-5)
    slow = write_wav(tmp_path / "slow.wav", np.zeros(8000), rate=8000)
    done = _run_py(bundle, "infer", slow)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "error: slow.wav is sampled at 8000 Hz; the model takes 16000 Hz (nothing is "
        "resampled: convert the file, e.g. sox IN.wav -r 16000 OUT.wav)"]
