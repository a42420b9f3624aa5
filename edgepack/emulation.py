"""Run bundles on an emulated arm64 CPU: Debian's qemu-user-static and an arm64 Python
sysroot built once and cached (``edgepack toolchain install emulator``).

The sysroot is Debian's arm64 Python 3.11 (its ``.deb`` files unpacked, no chroot) plus the
aarch64 wheels of the runtimes edgepack verifies bundles with, at the versions installed here.
qemu runs ``-cpu`` the profile's CPU (never its default ``max``, whose SVE/i8mm paths the
boards do not have), with ``-L SYSROOT`` so that absolute paths resolve inside the sysroot
first; the sysroot holds an ARM view of ``/proc/cpuinfo`` and ``/sys/devices/system/cpu``
(ONNX Runtime and LiteRT read the CPU topology and crash on the x86 host's). Emulation gives
correct outputs, never meaningful latency: reports show no timing from it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from edgepack import procs
from edgepack.errors import EdgepackError
from edgepack.toolchains import cache_dir

QEMU = "qemu-aarch64-static"
PYTHON = "3.11"
DEBIAN_PACKAGES = (
    "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib", "libc6",
    "libgcc-s1", "libstdc++6", "zlib1g", "libffi8", "libssl3", "libexpat1", "libbz2-1.0",
    "liblzma5", "libsqlite3-0", "libuuid1", "libncursesw6", "libtinfo6", "libreadline8",
    "libnsl2", "libtirpc3", "libcrypt1", "libdb5.3", "libgssapi-krb5-2", "libkrb5-3",
    "libk5crypto3", "libkrb5support0", "libcom-err2", "libkeyutils1")
# qemu's CPU models for the CPUs profiles name, and their MIDR part numbers (/proc/cpuinfo)
CPUS = {"cortex-a53": "0xd03", "cortex-a55": "0xd05", "cortex-a57": "0xd07",
        "cortex-a72": "0xd08", "cortex-a76": "0xd0b", "neoverse-n1": "0xd0c"}
# every manylinux level up to bookworm's glibc: pip takes --platform tags literally
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_24_aarch64",
             "manylinux_2_27_aarch64", "manylinux_2_28_aarch64", "manylinux_2_31_aarch64",
             "manylinux_2_34_aarch64", "manylinux_2_35_aarch64", "manylinux_2_36_aarch64")
SITE = "/opt/edgepack/site"  # inside the sysroot


def cpu_for(cpu: str) -> str | None:
    """qemu's model for a profile's ``cpu`` ("Cortex-A72" -> "cortex-a72"), or None."""
    name = cpu.strip().lower().replace(" ", "-")
    return name if name in CPUS else None


def runtime_pins() -> list[str]:
    """The runtimes (and numpy) installed here, pinned: what bundles are verified with."""
    from edgepack.targets import all_targets

    pins = []
    for package in ("numpy", *(t.packages[0] for t in all_targets())):
        try:
            pin = f"{package}=={importlib.metadata.version(package)}"
        except importlib.metadata.PackageNotFoundError:
            continue
        if pin not in pins:
            pins.append(pin)
    return pins


class Sysroot:
    """The emulator toolchain: qemu + the arm64 Python sysroot (shown by `toolchain list`)."""

    name = f"arm64-sysroot-py{PYTHON}"
    purpose = "emulator"
    python = ((3, 11), (3, 11))
    size = "0.35 GB"
    shown = ()

    @property
    def path(self) -> Path:
        return cache_dir() / "emulation" / self.name

    @property
    def root(self) -> Path:
        return self.path / "root"

    def _stamp(self) -> str:
        return hashlib.sha256("\n".join(runtime_pins()).encode()).hexdigest()[:16]

    def installed(self) -> bool:
        stamp = self.path / "edgepack-sysroot.txt"
        return stamp.is_file() and stamp.read_text().strip() == self._stamp()

    def version(self, package: str) -> str | None:
        return None

    def find_python(self) -> str | None:
        return shutil.which(QEMU)

    def missing(self) -> str | None:
        """Why bundles cannot be emulated here (and how to fix it), or None."""
        if shutil.which(QEMU) is None:
            return (f"emulation needs {QEMU}: apt-get install qemu-user-static, then "
                    "edgepack toolchain install emulator")
        if not self.installed():
            return ("emulation needs the arm64 sysroot with the runtimes installed here; run: "
                    "edgepack toolchain install emulator")
        return None

    def install(self, log: Callable[[str], None]) -> None:
        """Build the sysroot: Debian's arm64 Python (apt-get download + dpkg -x) and the
        aarch64 wheels of the runtimes installed here. EdgepackError when it cannot."""
        if shutil.which(QEMU) is None:
            raise EdgepackError(f"{QEMU} is not installed: apt-get install qemu-user-static")
        arches = subprocess.run(["dpkg", "--print-foreign-architectures"], capture_output=True,
                                text=True).stdout.split()
        if "arm64" not in arches:
            raise EdgepackError("Debian's arm64 packages are not enabled: run "
                                "dpkg --add-architecture arm64 && apt-get update")
        shutil.rmtree(self.path, ignore_errors=True)
        self.root.mkdir(parents=True)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                log(f"downloading {len(DEBIAN_PACKAGES)} arm64 Debian packages")
                _step(["apt-get", "download", *(f"{p}:arm64" for p in DEBIAN_PACKAGES),
                       "media-types"], Path(tmp))
                for deb in sorted(Path(tmp).glob("*.deb")):
                    _step(["dpkg", "-x", str(deb), str(self.root)], Path(tmp))
            pins = runtime_pins()
            log(f"installing aarch64 wheels: {', '.join(pins)}")
            platforms = [a for p in PLATFORMS for a in ("--platform", p)]
            _step([shutil.which("python3") or "python3", "-m", "pip", "install", "--quiet",
                   "--target", str(self.root / SITE.lstrip("/")), "--python-version", PYTHON,
                   "--implementation", "cp", "--only-binary=:all:", *platforms, *pins],
                  self.path, python=True)
            (self.path / "edgepack-sysroot.txt").write_text(self._stamp() + "\n")
        except BaseException:
            shutil.rmtree(self.path, ignore_errors=True)
            raise
        log(f"installed {self.name}: {_size(self.path) / 2**30:.2f} GiB")

    def command(self, cpu: str) -> list[str]:
        """The interpreter prefix that runs the sysroot's Python on ``cpu``; writes the
        matching ARM CPU view into the sysroot first."""
        _cpu_view(self.root, cpu)
        return [QEMU, "-cpu", cpu, "-L", str(self.root), str(self.root / "usr/bin/python3.11")]

    def env(self) -> dict[str, str]:
        return {"PATH": "/usr/bin:/bin", "PYTHONPATH": SITE, "PYTHONNOUSERSITE": "1",
                "LC_ALL": "C.UTF-8", "HOME": str(self.path)}


def _step(cmd: list[str], cwd: Path, python: bool = False) -> None:
    env = None
    if python:  # pip of edgepack's own Python: the host's interpreter, not the sysroot's
        import sys

        cmd[0] = sys.executable
        env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    done = procs.run(cmd, what=" ".join(cmd[:2]), timeout=3600, cwd=cwd, capture=True, env=env)
    if not done.ok:
        raise EdgepackError(f"building the arm64 sysroot failed at '{' '.join(cmd[:3])}': "
                            f"{done.last_line() or done.reason}")


def _cpu_view(root: Path, cpu: str, cores: int = 2) -> None:
    cpus = root / "sys/devices/system/cpu"
    cpus.mkdir(parents=True, exist_ok=True)
    for name in ("possible", "present", "online"):
        (cpus / name).write_text(f"0-{cores - 1}\n")
    midr = (0x41 << 24) | (0xF << 16) | (int(CPUS[cpu], 16) << 4) | 3
    caches = (("1", "Data", "32K"), ("1", "Instruction", "48K"), ("2", "Unified", "1024K"))
    for i in range(cores):  # oneDNN's aarch64 JIT (OpenVINO) reads MIDR and the caches
        ident = cpus / f"cpu{i}/regs/identification"
        ident.mkdir(parents=True, exist_ok=True)
        (ident / "midr_el1").write_text(f"0x{midr:016x}\n")
        for n, (level, kind, size) in enumerate(caches):
            index = cpus / f"cpu{i}/cache/index{n}"
            index.mkdir(parents=True, exist_ok=True)
            for name, value in (("level", level), ("type", kind), ("size", size),
                                ("coherency_line_size", "64"),
                                ("shared_cpu_list", f"{i}" if level == "1" else
                                 f"0-{cores - 1}")):
                (index / name).write_text(value + "\n")
    entry = ("processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
             "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\n"
             "CPU part\t: {part}\nCPU revision\t: 3\n\n")
    (root / "proc").mkdir(exist_ok=True)
    (root / "proc/cpuinfo").write_text("".join(entry.format(i=i, part=CPUS[cpu])
                                               for i in range(cores)))


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


SYSROOT = Sysroot()


def run_bundle(bundle: Path, args: list[str], cpu: str, timeout: float,
               log: Path | None = None) -> procs.Finished:
    """``python run.py ARGS`` of a bundle on the emulated ``cpu`` (through the process door)."""
    return procs.run([*SYSROOT.command(cpu), str(bundle / "run.py"), *args],
                     what=f"the emulated aarch64 ({cpu}) run", timeout=timeout, log=log,
                     capture=True, cwd=bundle, env=SYSROOT.env())
