"""Real models that come in PyTorch, Keras and TFLite form: imported, lowered, verified
against their own framework.

    python -m benchmarks.importers [--models a,b] [--targets ort,openvino,tflite] [--out DIR]

all-MiniLM-L6-v2 as a PyTorch entry point (benchmarks/real_models/minilm_entry.py) on 32
real sentences; fer's emotion CNN as a legacy Keras .hdf5 and as a quantized .tflite on real
faces (scikit-image's bundled LFW subset). Prints per model and target the strategy that won
(an ONNX path, or a native one that reads the source), max abs error and lowest cosine
against the source framework, lowering time and peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

from benchmarks.real_models.__main__ import build, markdown
from benchmarks.real_models.models import IMPORTED


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(IMPORTED))
    parser.add_argument("--targets", default="ort,openvino,tflite")
    parser.add_argument("--precisions", default="fp32")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="edgepack-importers-"))
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    results = [build(n, out, args.targets, args.precisions, args.runs, IMPORTED) for n in names]
    for r in results:
        r["source"] = IMPORTED[r["model"]].source
    print(f"\nx86-64 profile, on the build host ({platform.machine()}, {os.cpu_count()} CPUs). "
          "Errors are against the source framework (torch, Keras, LiteRT).\n")
    print(markdown(results))
    for r in results:
        stage = (r.get("stages") or [{}])[0]
        print(f"- {r['model']}: {r['source']}; imported by {stage.get('tool')}, ONNX vs source "
              f"relative error {stage.get('check', {}).get('rel_error', float('nan')):.2e}")
    (out / "importers.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nJSON: {out / 'importers.json'}")
    ok = all(c["status"] == "ok" for r in results for c in r["cells"])
    return 0 if ok and all(r["cells"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
