"""Every value a user gives is checked before any work: one line, exit 2, nothing written."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from edgepack.cli.app import main
from edgepack.options import OPTIONS, markdown_table
from edgepack.settings import SETTINGS, Number
from tests.conftest import ROOT, make_matmul_model


def _run(capsys, *args):
    """The CLI in this process (fast: every check here happens before any work)."""
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return e.value.code, captured.err


def _one_line_error(code, err, match=""):
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("edgepack: error: "), err
    assert match in lines[0], lines[0]
    assert "Traceback" not in err


@pytest.fixture
def model(tmp_path):
    return make_matmul_model(tmp_path / "tiny.onnx", features=4, classes=3)


@pytest.mark.parametrize("args, match", [
    (("--max-accuracy-drop", "-5"), "--max-accuracy-drop: -5.0 is out of range; it must be a "
     "number in [0, 100] points"),
    (("--min-cosine", "2"), "--min-cosine: 2.0 is out of range; it must be a number in (0, 1]"),
    (("--runs", "-5"), "--runs: -5 is out of range; it must be an integer in [1, 10000000]"),
    (("--timeout", "0.001"), "--timeout: 0.001 is out of range; it must be a number in "
     "[10, 604800] s"),
    (("--runs", "abc"), "--runs: 'abc' is not an integer"),
    (("--min-cosine", "high"), "--min-cosine: 'high' is not a number"),
    (("--threads", "0"), "--threads: 0 is out of range"),
    (("--min-time", "nan"), "--min-time: nan is out of range"),
    (("--warmup", "-1"), "--warmup: -1 is out of range"),
    (("--no-such-flag",), "No such option: --no-such-flag (see 'edgepack build --help')"),
])
def test_flag_values_out_of_range(capsys, tmp_path, model, args, match):
    out = tmp_path / "dist"
    code, err = _run(capsys, "build", model, "--target", "ort", *args, "-o", out)
    _one_line_error(code, err, match)
    assert not out.exists()


def test_help_stays_as_it_is(cli):
    r = cli("build", "--help")
    assert r.returncode == 0 and r.stderr == ""
    for flag in ("--max-accuracy-drop", "--int8-io", "--preset", "openvino, ort, tflite"):
        assert flag in r.stdout  # every target's own flags, and the known targets


def _bad_values(setting: Number, rng: random.Random) -> list:
    values = [math.nan, math.inf, -math.inf]
    if setting.low is not None:
        values.append(setting.low - rng.uniform(0.001, 1000) if setting.kind is float
                      else int(setting.low) - rng.randint(1, 1000))
        if setting.low_open:
            values.append(setting.low)
    if setting.high is not None:
        values.append(setting.high + rng.uniform(0.001, 1000) if setting.kind is float
                      else int(setting.high) + rng.randint(1, 1000))
    if setting.kind is int:
        values.append(rng.uniform(1.1, 1.9) + (setting.low or 0))  # not an integer
    return values


NUMERIC = [s for s in SETTINGS.values() if isinstance(s, Number)]
# every numeric build option with a flag, and its range
FLAGGED = [o for o in OPTIONS.values() if o.flags and isinstance(o.row, Number)]


@pytest.mark.parametrize("option", FLAGGED, ids=lambda o: o.name)
def test_random_out_of_range_flags(capsys, tmp_path, model, option):
    rng = random.Random(option.name)
    for value in _bad_values(option.row, rng):
        out = tmp_path / "dist"
        code, err = _run(capsys, "build", model, "--target", "ort", option.flag, repr(value)
                         if isinstance(value, float) else value, "-o", out)
        _one_line_error(code, err, option.flag)
        assert not out.exists()


@pytest.mark.parametrize("setting", [s for s in NUMERIC if s.profile_key], ids=lambda s: s.key)
def test_random_out_of_range_profile_values(capsys, tmp_path, model, setting):
    rng = random.Random(setting.key)
    src = (ROOT / "targets" / "x86-64.toml").read_text()
    for i, value in enumerate(_bad_values(setting, rng)):
        toml_value = {math.inf: "inf", -math.inf: "-inf"}.get(value, repr(value))
        if isinstance(value, float) and math.isnan(value):
            toml_value = "nan"
        key = setting.profile_key
        if key.startswith(("accuracy.", "speed.")):
            table = key.split(".")[0]
            text = src + f"\n[{table}.int8]\n{key.rsplit('.', 1)[1]} = {toml_value}\n"
        else:
            lines = [ln for ln in src.splitlines() if not ln.startswith(f"{key} =")]
            text = "\n".join([f"{key} = {toml_value}", *lines]) + "\n"
        profile = tmp_path / f"p{i}.toml"
        profile.write_text(text)
        out = tmp_path / "dist"
        code, err = _run(capsys, "build", model, "--profile", profile, "-o", out)
        _one_line_error(code, err, str(profile))
        assert f"{key.rsplit('.', 1)[-1]}" in err
        assert not out.exists()


def test_profile_min_cosine_out_of_range(capsys, tmp_path, model):
    profile = tmp_path / "p.toml"
    profile.write_text((ROOT / "targets" / "x86-64.toml").read_text()
                       + "\n[accuracy.fp16]\nmin_cosine = 7.5\n")
    code, err = _run(capsys, "profiles", "show", profile)
    _one_line_error(code, err, "accuracy.fp16.min_cosine: 7.5 is out of range; it must be a "
                    "number in (0, 1]")


@pytest.mark.parametrize("labels, match", [
    (np.array([0, 1, -2, 1, 0, 2]), "holds 1 negative value(s), e.g. -2 at index 2"),
    (np.array([0, 1, 10**6, 1, 0, 2]), "holds 1 value(s) outside 0..2, e.g. 1000000 at index 2; "
     "output 'logits' scores 3 classes"),
])
def test_labels_must_index_the_classes(capsys, tmp_path, model, labels, match):
    data = tmp_path / "d.npz"
    np.savez(data, x=np.ones((6, 4), np.float32), labels=labels)
    out = tmp_path / "dist"
    code, err = _run(capsys, "build", model, "--target", "ort", "--precision", "fp32",
                     "--data", data, "-o", out)
    _one_line_error(code, err, match)
    assert not out.exists()


def test_docs_table_is_generated_from_the_settings():
    """docs/cli.md ("Values and ranges") quotes the table ``python -m edgepack.options`` prints."""
    page = (ROOT / "docs" / "cli.md").read_text()
    assert markdown_table() in page
