"""`edgepack verify` checks an archive against an external digest before trusting it, and
refuses bundles whose manifest reaches outside the bundle folder."""

from __future__ import annotations

import json
import shutil
import tarfile

import pytest

from edgepack.artifact import sha256_file
from edgepack.bundle import write_archive
from tests.conftest import ROOT, run_cli

SAMPLES = ROOT / "sample_models"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("auth") / "dist"
    r = run_cli("build", SAMPLES / "digits_cnn.onnx", "--profile", "rpi4",
                "--device-estimate", "off", "--target", "ort",
                "--precision", "fp32", "--data", SAMPLES / "digits_cnn.npz", "--runs", "5",
                "-o", out)
    assert r.returncode == 0, r.stderr
    return out / "digits_cnn"


def _copy_build(built, tmp_path):
    folder = tmp_path / "digits_cnn"
    shutil.copytree(built, folder)
    return folder, folder / "rpi4" / "ort-fp32.tar.gz"


def _extract(archive, into):
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "ort-fp32"


def test_sha256sums_lists_every_archive(built):
    sums = (built / "SHA256SUMS").read_text()
    archive = built / "rpi4" / "ort-fp32.tar.gz"
    assert sums == f"{sha256_file(archive)}  rpi4/ort-fp32.tar.gz\n"
    r = run_cli("verify", archive)
    assert r.returncode == 0, r.stderr
    assert f"archive sha256 matches {built / 'SHA256SUMS'}" in r.stdout
    assert r.stderr == ""  # what was checked is a fact: stdout


def test_tampered_archive_with_rewritten_manifest_fails(built, tmp_path):
    folder, archive = _copy_build(built, tmp_path)
    bundle = _extract(archive, tmp_path / "x")
    model = bundle / "model.ort"
    data = bytearray(model.read_bytes())
    data[-100] ^= 0xFF
    model.write_bytes(bytes(data))
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"]["model.ort"] = sha256_file(model)  # self-consistent again
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    write_archive(bundle, archive)
    r = run_cli("verify", archive)
    assert r.returncode == 1
    (text,) = r.stderr.strip().splitlines()
    assert "verification FAILED" in text and "(changed since the build)" in text
    assert "selftest" not in r.stdout + r.stderr  # nothing inside the archive was run


def test_sha256_flag_and_no_digest(built, tmp_path):
    lone = tmp_path / "ort-fp32.tar.gz"
    shutil.copyfile(built / "rpi4" / "ort-fp32.tar.gz", lone)
    r = run_cli("verify", lone)
    assert r.returncode == 0 and "no external digest" in r.stdout
    assert "self-consistent, not that it is authentic" in r.stdout
    assert run_cli("verify", lone, "--sha256", sha256_file(lone)).returncode == 0
    r = run_cli("verify", lone, "--sha256", "0" * 64)
    assert r.returncode == 1 and "not the --sha256 given" in r.stderr
    r = run_cli("verify", lone, "--sha256", "not-a-digest")
    assert r.returncode == 2 and "is not a sha256 digest (64 hex digits)" in r.stderr


@pytest.mark.parametrize("attack", ["dotdot", "absolute", "symlink", "unlisted"])
def test_manifest_paths_that_leave_the_bundle_are_refused(built, tmp_path, attack):
    bundle = _extract(built / "rpi4" / "ort-fp32.tar.gz", tmp_path / "x")
    manifest = json.loads((bundle / "manifest.json").read_text())
    outside = tmp_path / "secret.txt"
    outside.write_text("not part of the bundle")
    if attack == "dotdot":
        manifest["files"]["../../secret.txt"] = sha256_file(outside)
    elif attack == "absolute":
        manifest["files"][str(outside)] = sha256_file(outside)
    elif attack == "symlink":
        (bundle / "golden" / "link.npz").symlink_to(outside)
        manifest["files"]["golden/link.npz"] = sha256_file(outside)
    else:
        (bundle / "extra.py").write_text("print('not in the manifest')\n")
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    r = run_cli("verify", bundle)
    assert r.returncode == 1, r.stderr
    expected = {"dotdot": "path leaves the bundle folder", "absolute": "path leaves the bundle",
                "symlink": "is a symlink", "unlisted": "extra.py: not listed in the manifest"}
    (line,) = r.stderr.strip().splitlines()
    assert expected[attack] in line
