"""report.html: a self-contained page with the cell matrix, an SVG latency-vs-accuracy plot
(Pareto front highlighted), an SVG size chart and per-cell details with log excerpts; and
that a real browser draws it."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from edgepack.report.html import to_html
from edgepack.report.model import Cell, Report, Status
from edgepack.report.records import DeviceEstimate
from edgepack.report.render import to_markdown
from edgepack.report.svg import PARETO, POINT, pareto_front

HOST = {"hostname": "h", "machine": "x86_64", "cpu": "Test CPU", "cpus": 2,
        "memory_bytes": 8 * 2**30, "os": "Linux", "python": "3.11.7"}
SETTINGS = {"runs": 50, "min_time": None, "warmup": 10, "threads": None,
            "calibration_method": "minmax", "timeout": 1800.0}
LOG = "logs/rpi4-tflite-int8.log"
BUILD = {"created": "2026-01-01T00:00:00+00:00", "host": "h", "edgepack_version": "0.1.0"}


def _cell(**record) -> Cell:
    """A cell from its report.json record (the records typed as a build makes them)."""
    return Cell.from_json(record)


def _ok(target: str, precision: str, p50: float, top1: float, size: int) -> Cell:
    return _cell(
        profile="rpi4", target=target, precision=precision, status="ok", build=BUILD,
        latency={"p50": p50, "p90": p50 * 1.2, "p99": p50 * 1.3, "mean": p50, "min": p50 * 0.9,
                 "max": p50 * 1.4, "runs": 50, "threads": 2, "measured_on": "build host"},
        accuracy={"data": "labelled", "samples": 100, "source": "data.npz", "in_sample": False,
                  "budget": {"cosine": 0.99}, "selftest": [],
                  "outputs": {"logits": {"shape_ok": True, "top1": top1, "top1_reference": 0.98,
                                         "cosine": 0.9999, "top1_agreement": 0.99}}},
        memory={"peak_rss_bytes": 50 * 2**20}, size=size, bundle=f"rpi4/{target}-{precision}",
        archive=f"rpi4/{target}-{precision}.tar.gz", archive_sha256="cd" * 32,
        log=f"logs/rpi4-{target}-{precision}.log",
        gates=[{"name": "logits.cosine", "value": 0.9999, "limit": 0.99, "kind": "min",
                "ok": True}],
        attempts=[{"strategy": "default", "outcome": "accepted", "seconds": 1.25,
                   "accuracy": {"logits": {"top1": top1, "cosine": 0.9999}},
                   "speed": {"speedup": 1.5, "low": 1.4, "high": 1.6,
                             "min_speedup": 1.0, "verdict": "faster", "source": "host",
                             "rounds": 3, "detail": "host, 3 interleaved rounds"}}],
        notes=[f"{precision}: a note"])


def _report(cells: list[Cell]) -> Report:
    return Report(edgepack_version="0.1.0", created="2026-01-01T00:00:00+00:00",
                  source={"file": "model.onnx", "path": "model.onnx", "sha256": "ab" * 32,
                          "format": "onnx", "inputs": [], "outputs": []}, host=HOST,
                  tools={"onnx": "1.23.2", "onnxruntime": "1.32.0"}, settings=SETTINGS,
                  data={"eval": {"kind": "labelled", "source": "data.npz", "samples": 100},
                        "calib": None, "split": None, "in_sample": False},
                  stages=[{"stage": "import", "status": "ok", "tool": "onnx 1.23.2"}],
                  cells=tuple(cells), notes=("a report note",))


def _matrix_report(folder: Path) -> Report:
    failed = _cell(
        profile="rpi4", target="tflite", precision="int8", status="failed", requested=True,
        build=BUILD,
        reason="all 2 attempts rejected; last: accuracy gate logits.cosine missed <0.95>",
        log=LOG, failed_bundles="failed/rpi4/tflite-int8",
        gates=[{"name": "logits.cosine", "value": 0.93, "limit": 0.98, "kind": "min",
                "ok": False}],
        attempts=[{"strategy": "per-channel", "outcome": "rejected",
                   "reason": "cosine 0.93 < 0.98", "seconds": 2.0},
                  {"strategy": "per-tensor", "outcome": "rejected",
                   "reason": "converter crashed", "seconds": 0.5, "model": "minimal"}])
    skipped = _cell(profile="x86-64", target="openvino", precision="int8", status="skipped",
                    reason="openvino does not run on rpi4")
    log = folder / LOG
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("".join(f"log line {i}\n" for i in range(100))
                   + "FATAL: converter crashed <boom>\n")
    return _report([
        _ok("ort", "fp32", 2.0, 0.98, 2 * 2**20),  # the most accurate: on the front
        _ok("ort", "int8", 0.8, 0.97, 600 * 2**10),  # the fastest: on the front
        _ok("tflite", "fp16", 3.0, 0.96, 1 * 2**20),  # slower and worse than fp32: dominated
        failed, skipped])


def test_html_has_plots_pareto_details_and_log_excerpt(tmp_path):
    report = _matrix_report(tmp_path)
    page = to_html(report, tmp_path)

    # the matrix, rows coloured by status
    assert "<table class='matrix'>" in page
    assert page.count("<tr class='ok'>") == 3 and "<tr class='failed'>" in page
    assert "<tr class='skipped'>" in page
    # two inline SVG plots: latency vs accuracy and bundle size
    assert page.count("<svg ") == 2
    assert "aria-label='latency vs accuracy'" in page and "bundle size per cell" in page
    assert "top-1 accuracy of the bundle" in page and "p50 latency (ms)" in page
    assert "log scale" not in page  # 0.8 to 3 ms: a linear axis
    for key in ("rpi4/ort-fp32", "rpi4/ort-int8", "rpi4/tflite-fp16"):
        assert f">{key}</text>" in page  # a labelled point (and a bar)
    assert "600.0 KiB" in page and "2.00 MiB" in page
    assert "no bundle (failed)" in page and "no bundle (skipped)" in page
    # the Pareto front: two highlighted points and the step line between them
    assert [c.key for c in pareto_front(report.cells)] == ["rpi4/ort-int8", "rpi4/ort-fp32"]
    assert page.count("class='point pareto'") == 2 and page.count("class='point'") == 1
    assert "class='pareto-front'" in page
    # per cell details; the failed one open, with its reason, gates, attempts and log tail
    assert page.count("<details class='cell ") == 5
    assert "<details class='cell failed' open>" in page
    assert "accuracy gate logits.cosine missed &lt;0.95&gt;" in page
    assert "✗ missed" in page and "cosine 0.93 &lt; 0.98" in page
    assert "converter crashed" in page and "per-tensor" in page
    assert "openvino does not run on rpi4" in page
    assert f"last 40 lines of {LOG}" in page
    assert "log line 99" in page and "log line 61" in page and "log line 60\n" not in page
    assert "FATAL: converter crashed &lt;boom&gt;" in page and "<boom>" not in page
    # summary, host, tools, notes, stages
    assert "<strong>FAIL</strong>" in page and "Test CPU" in page and "8.00 GiB" in page
    assert "onnxruntime" in page and "a report note" in page and "onnx 1.23.2" in page
    # self-contained: nothing fetched from anywhere
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"<script|<link|<img|<iframe|@import|url\(", page, re.I)


def test_html_without_ok_cells_or_folder(tmp_path):
    report = _matrix_report(tmp_path)
    report = replace(report, cells=tuple(c for c in report.cells if c.status != "ok"))
    page = to_html(report)  # no folder: no log excerpt
    assert "no verified bundles" in page
    assert "log line 99" not in page and "all 2 attempts rejected" in page
    assert to_html(report, tmp_path).count("log line 99") == 1
    empty = _report([])
    assert "no verified bundles" in to_html(empty) and "no cells" in to_html(empty)


def test_scatter_uses_log_scale_for_wide_latencies_and_survives_odd_numbers(tmp_path):
    fast = _ok("ort", "int8", 0.05, 0.97, 10_000)
    slow = _ok("ort", "fp32", 20.0, 0.97, 20_000)  # as accurate and slower: dominated
    cosine_only = replace(_ok("tflite", "fp32", 1.0, 0.0, 30_000), accuracy={
        "outputs": {"a": {"cosine": 0.999}, "b": {"match": 0.995}}})
    # e.g. restored from the cache without timings
    odd = replace(_ok("tflite", "fp16", 1.0, 0.0, 0), latency=None, size=None)
    page = to_html(_report([fast, slow, cosine_only, odd]))
    assert "log scale" in page
    assert "accuracy: top-1, else lowest cosine / match" in page
    # the fastest and the most accurate (by cosine) are the front; slow is dominated by fast
    assert page.count("class='point pareto'") == 2 and page.count("class='point'") == 1
    assert "1 ok cell(s) without latency or accuracy are not plotted" in page


def test_publish_gives_the_html_its_folder(tmp_path):
    from edgepack.pipeline.publish import _write_reports

    _write_reports(tmp_path, _matrix_report(tmp_path))
    page = (tmp_path / "report.html").read_text()
    assert "FATAL: converter crashed &lt;boom&gt;" in page
    assert (tmp_path / "report.json").is_file() and (tmp_path / "report.md").is_file()


def _near(rgb: tuple[int, int, int], colour: str, tolerance: int = 40) -> bool:
    target = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return sum(abs(a - b) for a, b in zip(rgb, target, strict=True)) <= tolerance


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="chromium is not installed (`make test` installs it)")
def test_chromium_draws_the_report(tmp_path):
    from PIL import Image

    page = tmp_path / "report.html"
    page.write_text(to_html(_matrix_report(tmp_path), tmp_path))
    shot = tmp_path / "shot.png"
    run = subprocess.run(
        ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={shot}", "--window-size=1400,2400", page.as_uri()],
        capture_output=True, text=True, timeout=180)
    assert shot.is_file(), run.stderr[-2000:]

    image = Image.open(shot).convert("RGB")
    assert image.size == (1400, 2400)
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # text, tables, plots: not blank
    pixels = image.load()
    width, height = image.size
    pareto = [(x, y) for y in range(0, height, 2) for x in range(0, width, 2)
              if _near(pixels[x, y], PARETO)]
    points = [(x, y) for y in range(0, height, 2) for x in range(0, width, 2)
              if _near(pixels[x, y], POINT)]
    assert len(pareto) > 20, "no Pareto point or line drawn"
    assert len(points) > 5, "no other point drawn"
    # the scatter plot's region (around its points) holds axes, grid and labels
    xs, ys = [x for x, _ in pareto + points], [y for _, y in pareto + points]
    box = (max(min(xs) - 60, 0), max(min(ys) - 60, 0), min(max(xs) + 60, width),
           min(max(ys) + 60, height))
    region = image.crop(box)
    ink = sum(n for n, rgb in region.getcolors(maxcolors=1 << 20) if sum(rgb) < 600)
    assert ink > 0.02 * region.width * region.height


def test_targets_are_ranked_per_profile_by_the_device_estimate():
    """Each profile's targets, fastest first by the estimated p50 of each target's fastest
    shipped bundle; host-only figures and failed cells take no part."""
    from edgepack.report.rows import device_ranking

    def estimated(target, precision, p50):
        cell = _ok(target, precision, 1.0, 0.98, 1000)
        return replace(cell, device=DeviceEstimate.from_json({
            "status": "ok", "source": "estimate", "p50_ms": p50, "low_ms": p50 / 1.33,
            "high_ms": p50 / 0.67, "cpu": "Cortex-A72", "clock_ghz": 1.8, "threads": 4,
            "uncertainty": 0.33, "instructions": {"total": 1e8}, "bound": "simd"}))

    failed = replace(estimated("ort", "int8", 1.0), status=Status.FAILED)
    cells = [estimated("ort", "fp32", 140.0), estimated("ort", "int8", 112.0), failed,
             estimated("ncnn", "fp32", 80.4), estimated("tflite", "fp32", 137.0),
             _ok("openvino", "fp32", 5.0, 0.98, 1000)]
    (line,) = device_ranking(_report(cells))
    assert line == ("rpi4, targets fastest first by the device estimate: ncnn fp32 ≈80.4 ms, "
                    "ort int8 ≈112 ms, tflite fp32 ≈137 ms")
    md = to_markdown(_report(cells))
    assert line in md
