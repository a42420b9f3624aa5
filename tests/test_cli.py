"""The small commands, as a user runs them."""

import json

import pytest

from edgepack.version import __version__
from tests.conftest import make_matmul_model


def test_version(cli):
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"edgepack {__version__}"


def test_inspect_shows_symbolic_dims_and_ops(cli, tmp_path):
    model = make_matmul_model(tmp_path / "dyn.onnx", batch="batch")
    r = cli("inspect", model)
    assert r.returncode == 0, r.stderr
    assert "[batch, 4]" in r.stdout and "MatMul ×1" in r.stdout and "Parameters: 15" in r.stdout
    data = json.loads(cli("inspect", model, "--json").stdout)
    assert data["inputs"][0]["shape"] == ["batch", 4] and data["opsets"] == {"ai.onnx": 17}


def test_profiles_list_and_show(cli):
    r = cli("profiles", "list")
    assert r.returncode == 0 and "rpi4" in r.stdout and "Cortex-A76" in r.stdout
    shown = json.loads(cli("profiles", "show", "rpi4").stdout)
    assert shown["cores"] == 4 and shown["budgets"]["int8"]["max_top1_drop"] == 1.0
    r = cli("profiles", "show", "nope")
    assert r.returncode == 2 and "unknown profile 'nope'" in r.stderr


def test_build_help_at_80_columns_keeps_its_text_and_stays_short(cli):
    r = cli("build", "--help", env={"COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    text = r.stdout
    assert "[tool.edgepack]" in text and "[PROFILE=][user@]host[:port]" in text
    assert "<bool>" not in text and "<path>" not in text
    assert "auto" in text.split("--precision", 1)[1][:300]
    assert len(text.splitlines()) < 150, len(text.splitlines())


@pytest.fixture(scope="module")
def flagless(tmp_path_factory):
    """`edgepack build sample_models/digits_cnn.onnx` and nothing else, in a folder with no
    edgepack.toml, its output captured (no terminal): the profile's defaults, every target."""
    from tests.conftest import SAMPLES, run_cli

    cwd = tmp_path_factory.mktemp("flagless")
    return run_cli("build", SAMPLES / "digits_cnn.onnx", cwd=cwd), cwd / "dist"


def test_build_without_a_terminal_prints_each_attempt_as_it_starts(flagless):
    r, _ = flagless
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()  # progress goes to stdout: stderr keeps an error line
    attempts = [ln for ln in lines if "x86-64/ort-int8-dynamic: attempt " in ln]
    assert attempts and all(ln.startswith("[") and ln[9] == "]" for ln in attempts)
    assert any("attempt 1/" in ln and "dynamic-matmul" in ln for ln in attempts)
    assert any(ln.endswith("x86-64/ort-fp32: benchmarking on the build host") for ln in lines)


def test_the_simplest_command_skips_static_int8_without_data_and_passes(flagless, cli,
                                                                        tmp_path):
    """fp32, fp16 and int8-dynamic verified on every target that builds them (int8-dynamic
    may be declined as not faster: verified, not shipped), static int8 skipped with how to
    build it."""
    from tests.conftest import SAMPLES

    r, out = flagless
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "digits_cnn" / "report.json").read_text())
    cells = {(c["target"], c["precision"]): c for c in report["cells"] if not c["variant"]}
    assert {t for t, _ in cells} == {"ort", "openvino", "tflite", "ncnn"}
    for (target, precision), cell in cells.items():
        if precision == "int8" or (target, precision) == ("ncnn", "int8-dynamic"):
            assert cell["status"] == "skipped", cell
            continue
        assert cell["status"] in ("ok", "declined"), cell["reason"]
        assert cell["accuracy"]["outputs"]["logits"]["cosine"] > 0.999
        if precision == "fp32":
            assert cell["status"] == "ok"
    for target in ("ort", "openvino", "tflite"):
        reason = cells[(target, "int8")]["reason"]
        assert "static int8 needs calibration data" in reason
        assert "pass --data or --calib FILE" in reason
    named = cli("build", SAMPLES / "digits_cnn.onnx", "--precision", "int8", "-o",
                tmp_path / "x")
    assert named.returncode == 2 and "calibration data" in named.stderr
