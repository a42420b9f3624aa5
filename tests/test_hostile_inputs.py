"""Hostile inputs: archives built to break out or to run unchecked code, board addresses that
ssh would read as options, and malformed files that used to end in a traceback. Every case:
its exit code, exactly one line on stderr, and nothing run or written."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from edgepack.artifact import sha256_file
from edgepack.bundle import write_archive
from tests.conftest import build_sample, make_matmul_model, run_cli

CELL = "ort-fp32"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The digits sample for x86-64, ort fp32: one archive to tamper copies of."""
    out = tmp_path_factory.mktemp("hostile") / "dist"
    r = build_sample("digits_cnn", out, "--profile", "x86-64", "--target", "ort",
                     "--precision", "fp32", runs=5)
    assert r.returncode == 0, r.stderr
    return out / "digits_cnn" / "x86-64" / f"{CELL}.tar.gz"


@dataclass
class Case:
    """A tampered copy of the bundle, where the CLI may write nothing but its marker."""

    root: Path  # holds the archive, the unpacked bundle and the marker
    bundle: Path
    marker: Path  # written by the planted run.py if it ever starts
    tmpdir: Path  # TMPDIR of the CLI: edgepack's temporary folders, empty afterwards

    def manifest(self) -> dict:
        return json.loads((self.bundle / "manifest.json").read_text())

    def write_manifest(self, manifest: dict) -> None:
        (self.bundle / "manifest.json").write_text(json.dumps(manifest, indent=2))

    def relist(self, *names: str) -> None:
        """Make the manifest's checksums of ``names`` match again (a self-consistent forgery)."""
        manifest = self.manifest()
        for name in names:
            manifest["files"][name] = sha256_file(self.bundle / name)
        self.write_manifest(manifest)

    def archive(self, extra: tarfile.TarInfo | None = None, data: bytes = b"") -> Path:
        """The bundle as an archive (plus one hostile member), with a SHA256SUMS listing it:
        the outside digest matches, so only the gate's later steps can refuse it."""
        path = self.root / "x86-64" / f"{CELL}.tar.gz"
        path.parent.mkdir(exist_ok=True)
        write_archive(self.bundle, path)
        if extra is not None:
            raw = io.BytesIO()
            with tarfile.open(path) as src, tarfile.open(fileobj=raw, mode="w") as dst:
                for member in src.getmembers():
                    dst.addfile(member, src.extractfile(member) if member.isreg() else None)
                dst.addfile(extra, io.BytesIO(data) if extra.isreg() else None)
            path.write_bytes(gzip.compress(raw.getvalue(), mtime=0))
        (self.root / "SHA256SUMS").write_text(f"{sha256_file(path)}  x86-64/{path.name}\n")
        return path

    def files(self) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*"))

    def run(self, *args) -> tuple:
        before = self.files()
        r = run_cli(*args, env={"TMPDIR": str(self.tmpdir)}, timeout=300)
        return r, before


@pytest.fixture
def case(built, tmp_path):
    """The built bundle unpacked, its run.py replaced by one that writes a marker file, and
    the manifest made to match that run.py: a forgery whose own checksums hold."""
    root = tmp_path / "case"
    root.mkdir()
    with tarfile.open(built) as tar:
        tar.extractall(root / "unpacked", filter="data")
    marker = tmp_path / "marker"
    c = Case(root, root / "unpacked" / CELL, marker, tmp_path / "tmp")
    c.tmpdir.mkdir()
    (c.bundle / "run.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r})"
                                     ".write_text('the archive ran')\n")
    c.relist("run.py")
    return c


def _refused(case: Case, result, before: list[str], code: int, *words: str) -> str:
    """Exit ``code``, one stderr line holding ``words``, the planted run.py never started,
    nothing written (the case folder unchanged, edgepack's temporary folders gone)."""
    r = result
    assert r.returncode == code, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("edgepack: error: ") and "Traceback" not in r.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert not case.marker.exists(), "the archive's run.py was started"
    assert case.files() == before
    assert list(case.tmpdir.iterdir()) == []
    return lines[0]


COMMANDS = [("verify",), ("bench", "--runs", "5")]


# --------------------------------------------------------------------------- archive members
def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o644
    return info


MEMBERS = {
    "dotdot": (_member(f"{CELL}/../../escaped.txt"), "climbs out of its folder ('..')"),
    "absolute": (_member("/tmp/edgepack-hostile-test/escaped.txt"), "is an absolute path"),
    "symlink": (_member(f"{CELL}/golden/link.npz", tarfile.SYMTYPE, "inputs.npz"),
                "is a symbolic link"),
    "hardlink": (_member(f"{CELL}/extra.bin", tarfile.LNKTYPE, f"{CELL}/run.py"),
                 "is a hard link"),
    "fifo": (_member(f"{CELL}/golden/pipe", tarfile.FIFOTYPE), "is a FIFO"),
    "second top folder": (_member("other/escaped.txt"), "not one bundle folder"),
}


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize("kind", MEMBERS)
def test_unsafe_archive_members_are_refused_before_anything_is_extracted(case, command, kind):
    member, why = MEMBERS[kind]
    data = b"not part of the bundle\n"
    member.size = len(data) if member.isreg() else 0
    archive = case.archive(member, data)
    r, before = case.run(*command, archive)
    line = _refused(case, r, before, 1, f"{archive}: verification FAILED", why)
    if kind != "second top folder":
        assert f"member '{member.name}'" in line and "nothing was extracted" in line
    assert not Path("/tmp/edgepack-hostile-test").exists()


# --------------------------------------------------------------------------- manifest and files
def _escape_dotdot(case: Case) -> None:
    outside = case.root.parent / "secret.txt"
    outside.write_text("not part of the bundle")
    manifest = case.manifest()
    manifest["files"]["../../secret.txt"] = sha256_file(outside)
    case.write_manifest(manifest)


def _escape_model(case: Case) -> None:
    manifest = case.manifest()
    manifest["model_file"] = "../../../../../etc/hostname"
    case.write_manifest(manifest)


def _unlisted(case: Case) -> None:
    (case.bundle / "extra.py").write_text("print('not in the manifest')\n")


def _modified_model(case: Case) -> None:
    model = case.bundle / "model.ort"
    data = bytearray(model.read_bytes())
    data[-100] ^= 0xFF
    model.write_bytes(bytes(data))


TAMPERED = {
    "manifest path with ..": (_escape_dotdot, 1, "../../secret.txt: path leaves the bundle"),
    "model path outside": (_escape_model, 2, "'model_file' '../../../../../etc/hostname': "
                           "path leaves the bundle folder"),
    "unlisted file": (_unlisted, 1, "extra.py: not listed in the manifest"),
    "modified model": (_modified_model, 1, "model.ort: sha256 mismatch"),
}


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize("kind", TAMPERED)
def test_tampered_bundles_are_refused_before_their_code_runs(case, command, kind):
    tamper, code, why = TAMPERED[kind]
    tamper(case)
    archive = case.archive()
    r, before = case.run(*command, archive)
    _refused(case, r, before, code, str(archive), why)


@pytest.mark.parametrize("kind", ["modified model", "unlisted file", "manifest path with .."])
def test_bench_of_a_bundle_folder_checks_the_manifest_first(case, kind):
    tamper, code, why = TAMPERED[kind]
    tamper(case)
    r, before = case.run("bench", case.bundle, "--runs", "5")
    _refused(case, r, before, code, str(case.bundle), why)


def test_bench_on_a_tampered_archive_names_the_file_and_never_starts_run_py(case):
    """What issue 25 must show: exit 1, one line naming the file, run.py never started."""
    _modified_model(case)
    archive = case.archive()
    r, before = case.run("bench", archive, "--runs", "5")
    line = _refused(case, r, before, 1)
    assert line == (f"edgepack: error: {archive}: verification FAILED: files do not match "
                    "the manifest: model.ort: sha256 mismatch")


def test_bench_refuses_an_archive_changed_since_the_build(case, built):
    archive = case.archive()
    (case.root / "SHA256SUMS").write_text(f"{sha256_file(built)}  x86-64/{archive.name}\n")
    r, before = case.run("bench", archive, "--runs", "5")
    _refused(case, r, before, 1, "(changed since the build)")


def test_bench_refuses_an_archive_with_no_outside_digest_unless_told(case, built):
    lone = case.root / "lone.tar.gz"
    shutil.copyfile(built, lone)
    r, before = case.run("bench", lone, "--runs", "5")
    _refused(case, r, before, 2, "no external digest", "--trust-unverified")
    r = run_cli("bench", lone, "--runs", "5", "--trust-unverified")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["latency_ms"]["runs"] == 5
    r = run_cli("bench", lone, "--runs", "5", "--sha256", sha256_file(lone))
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_garbage_sha256sums_is_one_line(case, command):
    archive = case.archive()
    (case.root / "SHA256SUMS").write_bytes(b"\xff\xfe\x00" + os.urandom(64))
    r, before = case.run(*command, archive)
    _refused(case, r, before, 2, "SHA256SUMS is not a SHA256SUMS file (it is not text)")


# --------------------------------------------------------------------------- malformed manifests
def _files_entry_list(case: Case) -> None:
    manifest = case.manifest()
    manifest["files"]["model.ort"] = [manifest["files"]["model.ort"]]
    case.write_manifest(manifest)


def _model_file_list(case: Case) -> None:
    manifest = case.manifest()
    manifest["model_file"] = [manifest["model_file"]]
    case.write_manifest(manifest)


def _preprocessing_size_text(case: Case) -> None:
    manifest = case.manifest()
    manifest["preprocessing"] = {"kind": "image", "input": "input", "size": "8x8", "resize": 8,
                                 "crop": "center", "scale": 1.0, "mean": [0], "std": [1],
                                 "channels": "GRAY", "layout": "NCHW"}
    case.write_manifest(manifest)


MALFORMED = {
    "files entry a list": (_files_entry_list, "'files' entry 'model.ort' is a list, not a "
                           "sha256 (64 hex digits)"),
    "model path a list": (_model_file_list, "'model_file' is a list, not a string"),
    "preprocessing size text": (_preprocessing_size_text, "'preprocessing.size' is a string, "
                                "not a list"),
}


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize("kind", MALFORMED)
def test_manifest_fields_of_the_wrong_type_are_one_line(case, command, kind):
    tamper, why = MALFORMED[kind]
    tamper(case)
    archive = case.archive()
    r, before = case.run(*command, archive)
    _refused(case, r, before, 2, f"{archive}: manifest.json: {why}")


def test_the_device_runner_refuses_a_model_path_that_is_a_list(built, tmp_path):
    """run.py on the device reads the manifest with the same checks: exit 2, one line."""
    with tarfile.open(built) as tar:
        tar.extractall(tmp_path, filter="data")
    bundle = tmp_path / CELL
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["model_file"] = ["model.ort"]
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    import subprocess
    import sys

    for args in (["bench", "--runs", "5"], ["selftest"]):
        r = subprocess.run([sys.executable, "run.py", *args], cwd=bundle, capture_output=True,
                           text=True)
        assert r.returncode == 2, r.stdout + r.stderr
        assert r.stderr.strip() == ("error: manifest.json: 'model_file' is a list, not a "
                                    "string"), r.stderr


# --------------------------------------------------------------------------- one line per error
def _fake_golden_outputs(case: Case) -> None:
    """Golden outputs moved off the reference, every checksum fixed: only running it tells."""
    import numpy as np

    golden = case.bundle / "golden" / "outputs.npz"
    arrays = {k: v + np.float32(0.5) * np.abs(v).max() for k, v in np.load(golden).items()}
    np.savez(golden, **arrays)


def test_a_failed_selftest_is_one_line_on_stderr_and_its_log_on_stdout(built, tmp_path):
    with tarfile.open(built) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    case = Case(tmp_path, tmp_path / "x" / CELL, tmp_path / "marker", tmp_path)
    _fake_golden_outputs(case)
    case.relist("golden/outputs.npz")
    archive = tmp_path / ("long-" * 40 + "name.tar.gz")  # a line past rich's 200 columns
    digest = write_archive(case.bundle, archive)
    r = run_cli("verify", archive, "--sha256", digest)
    assert r.returncode == 1, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"edgepack: error: {archive}: verification FAILED (here): "
                           "selftest FAILED on onnxruntime")
    assert "archive sha256 matches --sha256" in r.stdout and "logits:" in r.stdout


def test_a_failed_benchmark_is_one_line_on_stderr(built, tmp_path):
    import numpy as np

    with tarfile.open(built) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    bundle = tmp_path / "x" / CELL
    golden = bundle / "golden" / "inputs.npz"
    np.savez(golden, **{k: v[..., :1] for k, v in np.load(golden).items()})  # wrong shape
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"]["golden/inputs.npz"] = sha256_file(golden)
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    r = run_cli("bench", bundle, "--runs", "5")
    assert r.returncode == 1, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("edgepack: error: the benchmark exited with code 2: error: input")


# --------------------------------------------------------------------------- board addresses
HOSTS = {
    "-V": "starts with '-', which ssh would read as an option",
    "-oX=y": "starts with '-', which ssh would read as an option",
    "-oProxyCommand=touch /tmp/pwned": "starts with '-', which ssh would read as an option",
    "pi@-oProxyCommand=x": "starts with '-', which ssh would read as an option",
    "a b": "holds whitespace",
    "$(x)": "holds '$', '(', ')'",
}


@pytest.fixture
def fake_ssh(tmp_path):
    """An ``ssh`` first on PATH that records that it started (and cannot connect)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    started = tmp_path / "ssh-started"
    (folder / "ssh").write_text(f"#!/bin/sh\necho \"$@\" >> {started}\nexit 1\n")
    (folder / "ssh").chmod(0o755)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}, started


def _no_ssh(r, started: Path, *words: str) -> None:
    assert r.returncode == 2, r.stdout + r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("edgepack: error: ") and all(w in line for w in words), line
    assert not started.exists(), "ssh was started"


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("command", ["verify", "bench"])
def test_a_board_address_never_reaches_ssh_as_an_option(built, fake_ssh, host, command):
    env, started = fake_ssh
    r = run_cli(command, built, f"--remote={host}", env=env)
    _no_ssh(r, started, f"--remote {host!r}: {HOSTS[host]}")


@pytest.mark.parametrize("host", HOSTS)
def test_build_refuses_a_board_address_before_any_work(tmp_path, fake_ssh, host):
    env, started = fake_ssh
    model = make_matmul_model(tmp_path / "tiny.onnx")
    out = tmp_path / "dist"
    r = run_cli("build", model, "--target", "ort", "--precision", "fp32", f"--remote={host}",
                "-o", out, env=env)
    _no_ssh(r, started, f"--remote {host!r}: {HOSTS[host]}")
    assert not out.exists() and not list(tmp_path.glob(".edgepack-build-*"))


@pytest.mark.parametrize("host", ["-oProxyCommand=touch /tmp/pwned", "-V", "$(x)"])
def test_a_config_file_board_address_never_reaches_ssh(tmp_path, fake_ssh, host):
    env, started = fake_ssh
    make_matmul_model(tmp_path / "tiny.onnx")
    (tmp_path / "edgepack.toml").write_text(
        f'model = "tiny.onnx"\ntargets = ["ort"]\nprecisions = ["fp32"]\n'
        f"remotes = [{json.dumps(host)}]\n")
    for command in ("build", "plan"):
        r = run_cli(command, cwd=tmp_path, env=env)
        _no_ssh(r, started, f"edgepack.toml: remotes[0] {host!r}: {HOSTS[host]}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bin", "edgepack.toml", "tiny.onnx"]


def test_ssh_gets_the_destination_after_a_double_dash():
    from edgepack.remote import parse_remote

    board = parse_remote("rpi4=pi@raspberrypi.local:2222")
    assert (board.profile, board.user, board.host, board.port) == (
        "rpi4", "pi", "raspberrypi.local", 2222)
    cmd = board.ssh("true")
    assert cmd[cmd.index("--") + 1:] == ["pi@raspberrypi.local", "true"]
    assert cmd.index("-p") < cmd.index("--")


# --------------------------------------------------------------------------- reports, plan, logs
HEADER = {"edgepack_version": "0", "created": "now", "source": {"file": "m.onnx"}, "host": {},
          "tools": {}, "settings": {}}


@pytest.mark.parametrize("content", [[], {**HEADER, "cells": [[]]}, {**HEADER, "host": []}],
                         ids=["a list", "a cell a list", "the host a list"])
def test_a_report_that_is_not_an_object_is_one_line(tmp_path, content):
    bad = tmp_path / "bad" / "m"
    bad.mkdir(parents=True)
    (bad / "report.json").write_text(json.dumps(content))
    for args in (("report", "merge", tmp_path / "bad", "-o", tmp_path / "out"),
                 ("report", "compare", bad / "report.json", bad / "report.json")):
        r = run_cli(*args)
        assert r.returncode == 2, r.stderr
        (line,) = r.stderr.strip().splitlines()
        assert "is not an edgepack report.json" in line and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag", ["--data", "--calib", "--eval"])
def test_plan_checks_every_file_it_names(tmp_path, flag):
    model = make_matmul_model(tmp_path / "tiny.onnx")
    for path, why in ((tmp_path / "missing.npz", "does not exist"), (tmp_path, "no images")):
        r = run_cli("plan", model, "--target", "ort", "--precision", "fp32", flag, path)
        assert r.returncode == 2, r.stdout
        (line,) = r.stderr.strip().splitlines()
        assert line.startswith(f"edgepack: error: {flag} " + (
            f"file {path} does not exist" if why == "does not exist" else
            f"{path}: a folder with no images or WAV files"))  # a folder of data is read
        assert r.stdout == ""


@pytest.mark.parametrize("command", ["build", "plan"])
def test_an_empty_cell_is_an_error_not_every_cell(tmp_path, command):
    model = make_matmul_model(tmp_path / "tiny.onnx")
    out = tmp_path / "dist"
    r = run_cli(command, model, "--target", "ort", "--precision", "fp32", "--cell", "",
                *(["-o", out] if command == "build" else []))
    assert r.returncode == 2, r.stdout + r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert "--cell names no cell" in line
    assert not out.exists() and r.stdout == ""


@dataclass(frozen=True)
class _BrokenSpec:
    """A task spec the child cannot even read: it dies with a traceback, no result."""

    task: ClassVar[str] = "reference"
    nonsense: str = "x"


def test_a_crashed_task_quotes_its_log_instead_of_pointing_into_a_temporary_folder(tmp_path):
    from edgepack.child import run_task

    log = tmp_path / "logs" / "reference.log"
    res = run_task(_BrokenSpec(), tmp_path / "work", log, timeout=120)
    assert not res.ok and str(log) not in res.reason and "see " not in res.reason
    assert res.reason == ("reference exited with code 1: TypeError: ReferenceSpec.__init__() "
                          "got an unexpected keyword argument 'nonsense'")

