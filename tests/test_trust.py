"""CI results you can trust: the same inputs give the same bundles, the same decisions and the
same verdict; a model that does more work is a regression; an unchanged rerun is not."""

from __future__ import annotations

import json

import pytest

from edgepack.emulation import SYSROOT
from tests.conftest import SAMPLES, run_cli
from tests.helpers.models import stacked_mlp
from tests.helpers.reports import read_report

needs_counter = pytest.mark.skipif(SYSROOT.counter_missing() is not None,
                                   reason=str(SYSROOT.counter_missing()))



def _shipped(report: dict) -> dict[str, tuple[str, str | None]]:
    return {f"{c['profile']}/{c['target']}-{c['precision']}": (c["status"], c["archive_sha256"])
            for c in report["cells"]}


@needs_counter
def test_the_same_build_twice_ships_the_same_bundles(tmp_path):
    """With device estimates the speed decisions come from instruction counts: two builds
    ship the same cells with the same digests, and decline the same ones."""
    args = [SAMPLES / "digits_cnn.onnx", "--profile", "rpi5", "--target", "ort",
            "--precision", "fp32,int8", "--eval", SAMPLES / "digits_cnn.npz",
            "--calib", SAMPLES / "digits_cnn_calib.npz", "--runs", "10"]
    first = run_cli("build", *args, "-o", tmp_path / "a")
    second = run_cli("build", *args, "-o", tmp_path / "b")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    a, b = read_report(tmp_path / "a", "digits_cnn"), read_report(tmp_path / "b", "digits_cnn")
    assert _shipped(a) == _shipped(b)
    assert (tmp_path / "a/digits_cnn/SHA256SUMS").read_text() == \
        (tmp_path / "b/digits_cnn/SHA256SUMS").read_text()
    for cell in a["cells"]:
        if cell["precision"] != "fp32":
            assert cell["speed"]["source"] == "estimate", cell["speed"]
            assert cell["status"] in ("ok", "declined")  # never failed for speed by default


@needs_counter
def test_compare_flags_a_model_that_does_more_work_and_passes_a_rerun(tmp_path):
    """Default single-round builds for rpi5: a model with 20% more work is a regression (its
    instructions on the Cortex-A76 rose), an unchanged rebuild is not."""
    base, more = tmp_path / "base" / "mlp.onnx", tmp_path / "more" / "mlp.onnx"
    base.parent.mkdir()
    more.parent.mkdir()
    stacked_mlp(base, 5)
    stacked_mlp(more, 6)
    args = ["--profile", "rpi5", "--target", "ort", "--precision", "fp32", "--runs", "10"]
    for name, model in (("old", base), ("rerun", base), ("new", more)):
        r = run_cli("build", model, *args, "-o", tmp_path / name)
        assert r.returncode == 0, r.stderr
    same = run_cli("report", "compare", tmp_path / "old", tmp_path / "rerun", "--json")
    assert same.returncode == 0, same.stdout + same.stderr
    counted = [d for d in json.loads(same.stdout)["deltas"]
               if d["metric"].startswith("instructions")]
    assert counted and abs(float(counted[0]["change"].rstrip("%"))) < 1.0
    worse = run_cli("report", "compare", tmp_path / "old", tmp_path / "new", "--json")
    assert worse.returncode == 1, worse.stdout + worse.stderr
    (reg,) = [d for d in json.loads(worse.stdout)["deltas"] if d["regression"]]
    assert reg["metric"] == "instructions (Cortex-A76, M)"
    assert 15.0 < float(reg["change"].rstrip("%")) < 25.0
    host = [d for d in json.loads(worse.stdout)["deltas"] if d["metric"] == "host p50 ms"]
    assert host and "not gated: one benchmark process" in host[0]["note"]
