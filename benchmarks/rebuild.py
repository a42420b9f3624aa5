"""What the build cache and --jobs save: first build, unchanged rebuild, and --jobs 2.

    python -m benchmarks.rebuild [--out DIR]

For the digits sample (the demo build: rpi4, ort, fp32/fp16/int8) and the 3-channel sample
(rpi4, ort + openvino + tflite, fp32 and int8), in a fresh cache folder: times the first
`edgepack build --cache DIR`, then the same command again (every cell restored), and checks
that both wrote the same SHA256SUMS. Then times the 3-channel first build with --jobs 2 (no
cache) against --jobs 1. Wall-clock of the whole CLI process, on this host.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_models"
CASES = {
    "digits_cnn": ("--profile", "rpi4", "--target", "ort", "--precision", "fp32,fp16,int8"),
    "mobilenet_digits": ("--profile", "rpi4", "--target", "ort,openvino,tflite",
                         "--precision", "fp32,int8"),
}


def build(name: str, out: Path, *extra: str) -> tuple[float, int]:
    cmd = [sys.executable, "-m", "edgepack", "build", str(SAMPLES / f"{name}.onnx"),
           *CASES[name], "--eval", str(SAMPLES / f"{name}.npz"),
           "--calib", str(SAMPLES / f"{name}_calib.npz"), "-o", str(out), *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return time.perf_counter() - start, proc.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="work folder (default: a temp dir, removed)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="edgepack-rebuild-"))
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    print(f"Host: {cpu}, {len(__import__('os').sched_getaffinity(0))} CPUs\n")
    print("| model | cells | first build s | unchanged rebuild s | rebuild / first | "
          "same SHA256SUMS |")
    print("|---|---|---|---|---|---|")
    ok = True
    try:
        for name in CASES:
            cache = out / f"cache-{name}"
            first, code1 = build(name, out / f"first-{name}", "--cache", str(cache))
            again, code2 = build(name, out / f"again-{name}", "--cache", str(cache))
            sums = [(out / d / name / "SHA256SUMS").read_text()
                    for d in (f"first-{name}", f"again-{name}")]
            cells = len(sums[0].splitlines())
            same = sums[0] == sums[1]
            ok &= same
            print(f"| {name} | {cells} ok (exit {code1}, {code2}) | {first:.1f} | {again:.2f} "
                  f"| {again / first:.1%} | {'yes' if same else 'NO'} |", flush=True)
        name = "mobilenet_digits"
        print("\n| model | --jobs 1 s | --jobs 2 s | speed-up |\n|---|---|---|---|")
        one, _ = build(name, out / "jobs1")
        two, _ = build(name, out / "jobs2", "--jobs", "2")
        print(f"| {name} (3 targets × fp32, int8) | {one:.1f} | {two:.1f} | {one / two:.2f}× |")
    finally:
        if not args.out:
            shutil.rmtree(out, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
