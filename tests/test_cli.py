"""The small commands, as a user runs them."""

import json

from edgepack import __version__
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
