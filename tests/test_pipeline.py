"""End to end: `edgepack build` on the sample models with the real ONNX Runtime target."""

from __future__ import annotations

import json
import tarfile

import pytest

from tests.conftest import (
    NO_ESTIMATE,
    ROOT,
    build_sample,
    fake_env,
    make_matmul_model,
    run_cli,
    selftest_extracted,
)
from tests.helpers.reports import cells_by_key, read_report


@pytest.fixture(scope="module")
def mobilenet_build(tmp_path_factory):
    """One build of the 3-channel sample: rpi4, ort, fp32 + int8, real labels."""
    out = tmp_path_factory.mktemp("build") / "dist"
    r = build_sample("mobilenet_digits", out, "--profile", "rpi4", "--target", "ort",
                     "--precision", "fp32,int8")
    return r, out


def test_build_verifies_with_labels(mobilenet_build):
    r, out = mobilenet_build
    assert r.returncode == 0, r.stderr
    report = read_report(out, "mobilenet_digits")
    assert report["schema_version"] == 3 and report["ok"] is True
    assert report["data"]["eval"]["kind"] == "labelled"
    cells = cells_by_key(report)
    fp32, int8 = cells["rpi4/ort-fp32"], cells["rpi4/ort-int8"]
    for cell in (fp32, int8):
        assert cell["status"] == "ok"
        logits = cell["accuracy"]["outputs"]["logits"]
        assert cell["accuracy"]["data"] == "labelled"
        assert logits["top1"] > 0.9  # a real classifier on real labels
        assert all(g["ok"] for g in cell["gates"])
        lat = cell["latency"]
        assert lat["runs"] == 20 and 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["max"]
        assert lat["cold_start_ms"]["load"] > 0 and cell["memory"]["peak_rss_bytes"] > 0
        assert (out / "mobilenet_digits" / cell["bundle"] / "model.ort").is_file()
        assert (out / "mobilenet_digits" / cell["archive"]).is_file()
    assert fp32["accuracy"]["outputs"]["logits"]["cosine"] > 0.99999
    drop = int8["accuracy"]["outputs"]["logits"]["top1_drop_points"]
    assert drop <= 1.0
    assert "int8" in " ".join(int8["notes"]) and "minmax" in " ".join(int8["notes"])
    md = (out / "mobilenet_digits" / "report.md").read_text()
    assert "| rpi4 | ort | int8 | ok |" in md and "not on the device" in md
    assert "| rpi4    | ort    | int8      | ok " in r.stderr.replace("│", "|")  # the table
    assert "rpi4/ort-int8: ok" in r.stdout  # and the CI log's line as the cell ends


def test_bundle_layout_and_manifest(mobilenet_build):
    _, out = mobilenet_build
    bundle = out / "mobilenet_digits" / "rpi4" / "ort-int8"
    names = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    assert names == {"model.ort", "required_operators.config", "manifest.json", "run.py",
                     "backend.py", "requirements.txt", "README.md", "golden/inputs.npz",
                     "golden/outputs.npz"}
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["precision"] == "int8" and manifest["profile"]["name"] == "rpi4"
    assert manifest["runtime"]["name"] == "onnxruntime"
    assert manifest["inputs"][0]["shape"] == [1, 3, 32, 32]
    assert set(manifest["files"]) == names - {"manifest.json"}
    reqs = (bundle / "requirements.txt").read_text()
    assert "onnxruntime==" in reqs and "numpy==" in reqs and "aarch64" in reqs
    assert "Conv" in (bundle / "required_operators.config").read_text()


def test_selftest_in_extracted_archive_needs_only_ort_and_numpy(mobilenet_build, tmp_path):
    _, out = mobilenet_build
    r = selftest_extracted(out / "mobilenet_digits" / "rpi4" / "ort-int8.tar.gz", tmp_path,
                           "onnxruntime", ("openvino", "ai_edge_litert"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "selftest passed on onnxruntime" in r.stdout


def test_verify_command_and_tampering(mobilenet_build, tmp_path):
    _, out = mobilenet_build
    archive = out / "mobilenet_digits" / "rpi4" / "ort-fp32.tar.gz"
    r = run_cli("verify", archive)
    assert r.returncode == 0, r.stderr
    assert "selftest passed" in r.stdout and r.stderr == ""
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path, filter="data")
    model = tmp_path / "ort-fp32" / "model.ort"
    data = bytearray(model.read_bytes())
    data[-100] ^= 0xFF
    model.write_bytes(bytes(data))
    r = run_cli("verify", tmp_path / "ort-fp32")
    assert r.returncode == 1
    (line,) = r.stderr.strip().splitlines()
    assert "model.ort: sha256 mismatch" in line


def test_bench_command_times_an_archive(mobilenet_build):
    _, out = mobilenet_build
    r = run_cli("bench", out / "mobilenet_digits" / "rpi4" / "ort-int8.tar.gz", "--runs", "30",
                "--threads", "1")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["latency_ms"]["runs"] == 30 and result["threads"] == 1
    assert result["latency_ms"]["p50"] > 0 and result["memory"]["peak_rss_bytes"] > 0
    assert "not on the device" in r.stderr


def test_identical_inputs_give_identical_archives(mobilenet_build, tmp_path):
    _, first = mobilenet_build
    r = build_sample("mobilenet_digits", tmp_path / "again", "--profile", "rpi4", "--target",
                     "ort", "--precision", "fp32,int8", runs=5)
    assert r.returncode == 0, r.stderr
    a = cells_by_key(read_report(first, "mobilenet_digits"))
    b = cells_by_key(read_report(tmp_path / "again", "mobilenet_digits"))
    for key in ("rpi4/ort-fp32", "rpi4/ort-int8"):
        assert a[key]["archive_sha256"] == b[key]["archive_sha256"]
        assert len(a[key]["archive_sha256"]) == 64


def test_accuracy_gate_failure_is_exit_1_with_numbers(tmp_path):
    samples = ROOT / "sample_models"
    out = tmp_path / "dist"
    r = run_cli("build", samples / "digits_cnn.onnx", "--profile", "rpi4", "--target", "ort",
                "--precision", "fp32,int8-dynamic", "--data", samples / "digits_cnn.npz",
                "--min-cosine", "0.999999", "--runs", "5", "-o", out, *NO_ESTIMATE)
    assert r.returncode == 1, r.stderr  # int8-dynamic's cosine is ~0.99998: below the gate
    cells = cells_by_key(read_report(out, "digits_cnn"))
    assert cells["rpi4/ort-fp32"]["status"] == "ok"
    bad = cells["rpi4/ort-int8-dynamic"]
    assert bad["status"] == "failed"
    assert "logits.cosine" in bad["reason"] and "needs >= 0.999999" in bad["reason"]
    assert not (out / "digits_cnn" / "rpi4" / "ort-int8-dynamic").exists()
    assert "Gates missed" in (out / "digits_cnn" / "report.md").read_text()


def test_verification_rejects_a_wrong_model(tmp_path):
    samples = ROOT / "sample_models"
    out = tmp_path / "dist"
    r = run_cli("build", samples / "mobilenet_digits.onnx", "--profile", "x86-64",
                "--target", "wrong,ort", "--precision", "fp32", "--data",
                samples / "mobilenet_digits.npz", "--runs", "5", "-o", out,
                env=fake_env())
    assert r.returncode == 1, r.stderr
    cells = cells_by_key(read_report(out, "mobilenet_digits"))
    assert cells["x86-64/ort-fp32"]["status"] == "ok"
    wrong = cells["x86-64/wrong-fp32"]
    assert wrong["status"] == "failed" and "accuracy outside budget" in wrong["reason"]
    assert wrong["accuracy"]["outputs"]["logits"]["rel_error"] > 0.01


def test_crash_and_hang_fail_only_theircells(tmp_path):
    samples = ROOT / "sample_models"
    out = tmp_path / "dist"
    r = run_cli("build", samples / "digits_cnn.onnx", "--profile", "x86-64",
                "--target", "misbehaving", "--precision", "fp32,fp16,int8-dynamic",
                "--data", samples / "digits_cnn.npz", "--runs", "5", "--timeout", "20", "-o", out,
                env=fake_env())
    assert r.returncode == 1, r.stderr
    cells = cells_by_key(read_report(out, "digits_cnn"))
    assert cells["x86-64/misbehaving-fp32"]["status"] == "ok"
    assert "crashed (SIGABRT)" in cells["x86-64/misbehaving-fp16"]["reason"]
    assert "timed out after 20 s" in cells["x86-64/misbehaving-int8-dynamic"]["reason"]
    assert (out / "digits_cnn" / "logs" / "x86-64-misbehaving-fp16.log").is_file()


def test_synthetic_data_is_labelled_synthetic(tmp_path):
    model = make_matmul_model(tmp_path / "tiny.onnx", batch=1, features=8, classes=5)
    out = tmp_path / "dist"
    r = run_cli("build", model, "--profile", "x86-64", "--target", "ort", "--precision",
                "fp32,fp16", "--runs", "5", "-o", out, "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["data"]["eval"]["kind"] == "synthetic"
    assert all(c["accuracy"]["data"] == "synthetic" for c in report["cells"])
    assert "synthetic" in (out / "tiny" / "report.md").read_text()


def _without(tmp_path, *modules):
    """Environment in which importing ``modules`` fails, as on a core-only install."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(
        "import sys\n"
        "class B:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {modules!r}:\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, B())\n")
    return {"PYTHONPATH": str(site)}


def test_missing_extra_names_it(tmp_path):
    model = make_matmul_model(tmp_path / "tiny.onnx")
    out = tmp_path / "dist"
    r = run_cli("build", model, "--target", "openvino", "-o", out,
                env=_without(tmp_path, "openvino", "nncf"))
    assert r.returncode == 2
    assert r.stderr.strip() == ("edgepack: error: the 'openvino' target needs the 'openvino' "
                                "package, which is not installed; install it with: "
                                "pip install 'edgepack[openvino]'")
    assert not out.exists()


def test_unavailable_profile_defaults_are_skipped_and_say_why(tmp_path):
    model = make_matmul_model(tmp_path / "tiny.onnx")
    out = tmp_path / "dist"
    r = run_cli("build", model, "--profile", "x86-64", "--precision", "fp32", "--runs", "5",
                "-o", out, env=_without(tmp_path, "openvino", "nncf", "ai_edge_litert"))
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stderr.split())
    assert ("x86-64/openvino-fp32 skipped: openvino is not installed: pip install "
            "'edgepack[openvino]'") in text
    assert "x86-64/tflite-fp32 skipped: ai-edge-litert is not installed" in text
    report = read_report(out, "tiny")
    statuses = {c["target"]: c["status"] for c in report["cells"]}
    assert (statuses["ort"], statuses["openvino"], statuses["tflite"]) == \
        ("ok", "skipped", "skipped")
    assert report["ok"] is True
    assert "## Skipped" in (out / "tiny" / "report.md").read_text()


def test_the_bundle_readme_python_example_runs(mobilenet_build, tmp_path):
    """The README's ten lines, as a user pastes them, with the bundle's path filled in."""
    import re
    import subprocess
    import sys

    _, out = mobilenet_build
    bundle = out / "mobilenet_digits" / "rpi4" / "ort-int8"
    readme = (bundle / "README.md").read_text()
    block = readme.split("## From your own Python code", 1)[1].split("\n\n`model.infer`")[0]
    code = "\n".join(line[4:] for line in block.strip("\n").splitlines())
    code = code.replace("/path/to/this/bundle", str(bundle))
    assert len(code.splitlines()) <= 12 and "model.infer(" in code
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"\(1, 10\)\n", done.stdout)
