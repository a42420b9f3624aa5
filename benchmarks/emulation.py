"""What per-device verification costs: building the arm64 sysroot once, and an emulated run
with it cached.

    python -m benchmarks.emulation [--out DIR]

Builds the sysroot from scratch in a fresh cache folder (EDGEPACK_CACHE_DIR; Debian's arm64
packages and the aarch64 runtime wheels come from the registries, so the first build's time
depends on the network), prints its time and disk size, then times, with it cached, the
emulated selftest of an ORT, a TFLite and an OpenVINO rpi4 bundle of the 3-channel sample
(`edgepack verify ARCHIVE --emulate`) against the same check on the host.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_models" / "mobilenet_digits"


def _edgepack(*args, env=None) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "edgepack", *map(str, args)],
                          capture_output=True, text=True, env={**os.environ, **(env or {})})
    return time.perf_counter() - start, done


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="edgepack-emulation-"))
    cache = out / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    env = {"EDGEPACK_CACHE_DIR": str(cache)}
    seconds, done = _edgepack("toolchain", "install", "emulator", env=env)
    if done.returncode != 0:
        print(done.stdout + done.stderr)
        return 1
    disk = _size(cache / "emulation")
    rows = [("first sysroot build (download + unpack)", f"{seconds:.1f} s",
             f"{disk / 2**20:.0f} MiB on disk")]
    seconds, done = _edgepack("toolchain", "install", "emulator", env=env)
    rows.append(("install again (cached)", f"{seconds:.1f} s", ""))
    # the emulated runs use the user's cache (where the converter toolchains are): the same
    # sysroot, already built
    env = {}
    done = _edgepack("toolchain", "install", "emulator")[1]
    if done.returncode != 0:
        print(done.stdout + done.stderr)
        return 1
    dist = out / "dist"
    build_s, done = _edgepack(
        "build", f"{SAMPLE}.onnx", "--profile", "rpi4", "--target", "ort,tflite,openvino",
        "--precision", "fp32", "--eval", f"{SAMPLE}.npz", "--runs", "20", "--emulate",
        "-o", dist, env=env)
    if done.returncode != 0:
        print(done.stdout[-3000:] + done.stderr[-3000:])
        return 1
    for target in ("ort", "tflite", "openvino"):
        archive = dist / "mobilenet_digits" / "rpi4" / f"{target}-fp32.tar.gz"
        host_s, host = _edgepack("verify", archive, env=env)
        emu_s, emu = _edgepack("verify", archive, "--emulate", env=env)
        if host.returncode or emu.returncode:
            print(host.stderr + emu.stderr)
            return 1
        rows.append((f"verify {target}-fp32 (selftest, 8 golden samples)",
                     f"{emu_s:.1f} s emulated (cortex-a72)", f"{host_s:.1f} s on the host"))
    rows.append(("build of 3 targets x fp32 with --emulate",
                 f"{build_s:.1f} s", ""))
    print(f"\nOn {platform.machine()}, {os.cpu_count()} CPUs "
          f"({platform.platform(terse=True)}):\n")
    print("| step | time | |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
