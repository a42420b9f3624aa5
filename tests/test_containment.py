"""Failures that must stay contained: hangs, cancellations, children that lie, and output
that must never be lost. Each test ran red on the core before it was reshaped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from tests.conftest import NO_SPEED_GATE, ROOT, fake_env, run_cli, tagged_processes
from tests.helpers.reports import cells_by_key, read_report

SAMPLES = ROOT / "sample_models"
DIGITS = SAMPLES / "digits_cnn.onnx"
DIGITS_DATA = SAMPLES / "digits_cnn.npz"




def test_hanging_selftest_fails_only_its_cell(tmp_path):
    out = tmp_path / "dist"
    r = run_cli("build", DIGITS, "--profile", "x86-64", "--target", "ort,hangselftest",
                "--precision", "fp32", "--data", DIGITS_DATA, "--runs", "5", "--timeout", "20",
                "-o", out, env=fake_env())
    assert r.returncode == 1, r.stderr
    cells = cells_by_key(read_report(out))
    assert cells["x86-64/ort-fp32"]["status"] == "ok"
    hung = cells["x86-64/hangselftest-fp32"]
    assert hung["status"] == "failed"
    assert "selftest timed out after 20 s" in hung["reason"]
    # the rejected bundle is kept for inspection, with the cell's log
    kept = out / "digits_cnn" / hung["failed_bundles"]
    assert (kept / "log.txt").is_file() and list(kept.glob("1-default/model.ort"))
    # verify and bench of such a bundle time out with a reason, never a traceback
    r = run_cli("verify", kept / "1-default", "--timeout", "20")
    assert r.returncode == 1 and "selftest timed out after 20 s" in r.stderr
    assert "Traceback" not in r.stderr


def test_child_exiting_without_a_result_fails_its_cell(tmp_path):
    out = tmp_path / "dist"
    r = run_cli("build", DIGITS, "--profile", "x86-64", "--target", "noresult,ort",
                "--precision", "fp32", "--data", DIGITS_DATA, "--runs", "5", "-o", out,
                env=fake_env())
    assert r.returncode == 1, r.stderr
    cells = cells_by_key(read_report(out))
    assert "lower exited without writing its result" in cells["x86-64/noresult-fp32"]["reason"]
    assert cells["x86-64/ort-fp32"]["status"] == "ok"


def test_attempts_record_skips_rejections_and_their_own_numbers(tmp_path):
    out = tmp_path / "dist"
    r = run_cli("build", SAMPLES / "mobilenet_digits.onnx", "--profile", "x86-64", "--target",
                "strategies", "--precision", "fp32", "--data", SAMPLES / "mobilenet_digits.npz",
                "--runs", "5", "-o", out, env=fake_env())
    assert r.returncode == 0, r.stderr
    cell = read_report(out, "mobilenet_digits")["cells"][0]
    missing, wrong, right = cell["attempts"]
    assert (missing["outcome"], missing["reason"]) == ("skipped", "its converter is not installed")
    assert missing["accuracy"] is None
    assert wrong["outcome"] == "rejected" and wrong["accuracy"]["logits"]["rel_error"] > 0.01
    assert right["outcome"] == "accepted" and right["reason"] is None
    assert right["accuracy"]["logits"]["rel_error"] < 1e-4  # its own numbers, not wrong's
    assert cell["accuracy"]["outputs"]["logits"]["rel_error"] < 1e-4
    # the rejected bundle was kept; the accepted one is the cell's bundle
    folder = out / "mobilenet_digits"
    assert (folder / wrong["kept"] / "model.ort").is_file()
    assert wrong["kept"] == "failed/x86-64/strategies-fp32/2-wrong"
    assert (folder / cell["bundle"] / "model.ort").is_file()


def test_profiles_built_into_one_folder_keep_each_other(tmp_path):
    out = tmp_path / "dist"
    for profile in ("rpi4", "rpi5"):
        r = run_cli("build", DIGITS, "--profile", profile, "--target", "ort", "--precision",
                    "fp32", "--data", DIGITS_DATA, "--runs", "5", "--device-estimate", "off",
                    "-o", out)
        assert r.returncode == 0, r.stderr
    folder = out / "digits_cnn"
    cells = cells_by_key(read_report(out))
    assert set(cells) == {"rpi4/ort-fp32", "rpi5/ort-fp32"}
    for cell in cells.values():
        assert (folder / cell["archive"]).is_file() and (folder / cell["bundle"]).is_dir()
    sums = (folder / "SHA256SUMS").read_text()
    assert "rpi4/ort-fp32.tar.gz" in sums and "rpi5/ort-fp32.tar.gz" in sums
    assert "| rpi4 | ort | fp32 | ok |" in (folder / "report.md").read_text()
    assert "1 more cell(s) from earlier builds" in r.stderr


def test_failed_rebuild_keeps_the_earlier_good_bundle(tmp_path):
    out = tmp_path / "dist"
    args = ("build", DIGITS, "--profile", "rpi4",
            "--device-estimate", "off", "--target", "ort", "--precision",
            "int8-dynamic", "--data", DIGITS_DATA, "--runs", "5", "-o", out, *NO_SPEED_GATE)
    assert run_cli(*args).returncode == 0
    good = cells_by_key(read_report(out))["rpi4/ort-int8-dynamic"]
    r = run_cli(*args, "--min-cosine", "0.999999")
    assert r.returncode == 1, r.stderr
    cell = cells_by_key(read_report(out))["rpi4/ort-int8-dynamic"]
    assert cell["status"] == "failed" and "cosine" in cell["reason"]
    assert cell["previous"]["archive_sha256"] == good["archive_sha256"]
    archive = out / "digits_cnn" / good["archive"]
    assert archive.is_file() and archive.name in (out / "digits_cnn" / "SHA256SUMS").read_text()
    assert run_cli("verify", archive).returncode == 0


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_mid_build_kills_children_and_leaves_nothing(tmp_path, signum, code):
    tag = uuid.uuid4().hex
    out = tmp_path / "dist"
    env = {**os.environ, **fake_env(EDGEPACK_TEST_TAG=tag)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgepack", "build", DIGITS, "--target", "misbehaving",
         "--precision", "int8-dynamic", "--data", DIGITS_DATA, "-o", out],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while not any(_cmdline(pid).startswith("sleep") for pid in tagged_processes(tag)):
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
            time.sleep(0.2)
        proc.send_signal(signum)
        assert proc.wait(timeout=60) == code
    finally:
        proc.kill()
    lines = proc.stderr.read().strip().splitlines()
    assert lines[-1] == (f"edgepack: interrupted ({signal.Signals(signum).name}): child "
                         "processes killed, temporary files removed")
    assert not out.exists()
    assert not list(tmp_path.glob(".edgepack-build-*"))
    time.sleep(0.5)
    assert tagged_processes(tag) == []  # the lowering child and its grandchild are gone


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_in_sample_accuracy_is_split_or_said(tmp_path):
    out = tmp_path / "dist"
    r = run_cli("build", DIGITS, "--profile", "rpi4",
                "--device-estimate", "off", "--target", "ort", "--precision",
                "fp32,int8", "--data", DIGITS_DATA, "--runs", "5", "-o", out, *NO_SPEED_GATE)
    assert r.returncode == 0, r.stderr
    report = read_report(out)
    split = report["data"]["split"]
    assert split == {"seed": 0, "calib_samples": 112, "eval_samples": 338,
                     "source": str(DIGITS_DATA)}
    assert all(c["accuracy"]["samples"] == 338 for c in report["cells"])
    assert "112 samples calibrate, the other 338 evaluate" in (
        out / "digits_cnn" / "report.md").read_text()


def test_tiny_data_is_labelled_in_sample(tmp_path):
    import numpy as np

    data = tmp_path / "few.npz"
    with np.load(DIGITS_DATA) as z:
        np.savez(data, input=z["input"][:5], labels=z["labels"][:5])
    out = tmp_path / "dist"
    r = run_cli("build", DIGITS, "--profile", "rpi4",
                "--device-estimate", "off", "--target", "ort", "--precision", "int8",
                "--data", data, "--runs", "5", "-o", out, *NO_SPEED_GATE)
    assert r.returncode in (0, 1), r.stderr
    report = read_report(out)
    assert report["data"]["in_sample"] is True
    assert cells_by_key(report)["rpi4/ort-int8"]["accuracy"]["in_sample"] is True
    assert "**in-sample**" in (out / "digits_cnn" / "report.md").read_text()
