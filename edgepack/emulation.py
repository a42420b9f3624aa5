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
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from edgepack import procs
from edgepack.cpus import Guest
from edgepack.errors import EdgepackError
from edgepack.toolchains import cache_dir

QEMU = "qemu-aarch64-static"
QEMU_PLUGINS = "qemu-aarch64"  # Debian's dynamic qemu-user: the one that loads TCG plugins
PYTHON = "3.11"
COUNTER_SOURCE = Path(__file__).resolve().parent / "toolchains" / "insn_count.c"
GUEST = Path(__file__).resolve().parent / "device" / "count.py"
DEBIAN_PACKAGES = (
    "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib", "libc6",
    "libgcc-s1", "libstdc++6", "zlib1g", "libffi8", "libssl3", "libexpat1", "libbz2-1.0",
    "liblzma5", "libsqlite3-0", "libuuid1", "libncursesw6", "libtinfo6", "libreadline8",
    "libnsl2", "libtirpc3", "libcrypt1", "libdb5.3", "libgssapi-krb5-2", "libkrb5-3",
    "libk5crypto3", "libkrb5support0", "libcom-err2", "libkeyutils1")
# every manylinux level up to bookworm's glibc: pip takes --platform tags literally
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_24_aarch64",
             "manylinux_2_27_aarch64", "manylinux_2_28_aarch64", "manylinux_2_31_aarch64",
             "manylinux_2_34_aarch64", "manylinux_2_35_aarch64", "manylinux_2_36_aarch64")
SITE = "/opt/edgepack/site"  # inside the sysroot


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
        if "arm64" not in foreign_architectures():
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
        self.build_counter(log)

    # ------------------------------------------------------------------ instruction counter
    @property
    def counter(self) -> Path:
        digest = hashlib.sha256(COUNTER_SOURCE.read_bytes()).hexdigest()[:12]
        return self.path / "counter" / f"insn_count-{digest}.so"

    def build_counter(self, log: Callable[[str], None]) -> None:
        """Compile the instruction-counting plugin with the system C compiler."""
        cc = shutil.which("gcc") or shutil.which("cc")
        if cc is None:
            log("no C compiler (gcc): device estimates need one to build the instruction "
                "counter; apt-get install gcc, then run this again")
            return
        self.counter.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.counter.with_suffix(".part")
        done = procs.run([cc, "-shared", "-fPIC", "-O2", "-o", str(tmp), str(COUNTER_SOURCE)],
                         what="compiling the instruction counter", timeout=300, capture=True)
        if not done.ok:
            raise EdgepackError(f"compiling the instruction counter failed: {done.last_line()}")
        tmp.replace(self.counter)
        log(f"built the instruction counter {self.counter.name}")

    def counter_missing(self) -> str | None:
        """Why instructions cannot be counted here (and how to fix it), or None."""
        missing = self.missing()
        if missing:
            return missing
        if shutil.which(QEMU_PLUGINS) is None:
            return (f"counting instructions needs Debian's dynamic qemu ({QEMU_PLUGINS}, which "
                    "loads plugins): apt-get install qemu-user")
        if not self.counter.is_file():
            return ("the instruction counter is not built; run: edgepack toolchain install "
                    "emulator")
        return None

    def command(self, guest: Guest, counter_out: Path | None = None) -> list[str]:
        """The interpreter prefix that runs the sysroot's Python on ``guest``'s CPU, seeing
        that CPU's view. With ``counter_out``, the instruction counter runs too and writes
        there."""
        root = self.view(guest)
        qemu = [QEMU]
        if counter_out is not None:
            qemu = [QEMU_PLUGINS, "-plugin", f"{self.counter},out={counter_out}"]
        return [*qemu, "-cpu", guest.qemu, "-L", str(root), str(root / "usr/bin/python3.11")]

    def view(self, guest: Guest) -> Path:
        """A root for one CPU: the sysroot's folders (symlinked) with that CPU's own /proc
        and /sys. One per CPU and feature list, so emulations of different CPUs can run at
        once; built once, atomically."""
        cpu = guest.cpu
        key = hashlib.sha256(repr((cpu.qemu, cpu.midr_part, cpu.caches, guest.features))
                             .encode()).hexdigest()[:10]
        view = self.path / "views" / f"{cpu.qemu}-{key}"
        if (view / ".complete").is_file():
            return view
        view.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=view.parent))
        for entry in self.root.iterdir():
            if entry.name not in ("proc", "sys"):
                (tmp / entry.name).symlink_to(entry)
        _cpu_view(tmp, guest)
        (tmp / ".complete").write_text(cpu.qemu + "\n")
        try:
            tmp.rename(view)
        except OSError:  # another process made it first
            shutil.rmtree(tmp, ignore_errors=True)
        return view

    def env(self) -> dict[str, str]:
        # runtimes may write under HOME: the sysroot's own, never the user's
        return {"PATH": "/usr/bin:/bin", "PYTHONPATH": SITE, "PYTHONNOUSERSITE": "1",
                "LC_ALL": "C.UTF-8", "HOME": str(self.path / "home")}


def foreign_architectures() -> list[str]:
    """The foreign architectures dpkg has enabled (none when dpkg is missing or fails)."""
    if shutil.which("dpkg") is None:
        return []
    done = procs.run(["dpkg", "--print-foreign-architectures"], what="dpkg", timeout=60,
                     capture=True)
    return done.output.split() if done.ok else []


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


def _cpu_view(root: Path, guest: Guest, cores: int = 2) -> None:
    """``/proc/cpuinfo`` and ``/sys/devices/system/cpu`` of ``cores`` cores of ``guest``'s
    CPU, all from its CPU file (``targets/cpus/``): part number, caches, features."""
    cpu = guest.cpu
    cpus = root / "sys/devices/system/cpu"
    cpus.mkdir(parents=True, exist_ok=True)
    for name in ("possible", "present", "online"):
        (cpus / name).write_text(f"0-{cores - 1}\n")
    for i in range(cores):  # oneDNN's aarch64 JIT (OpenVINO) reads MIDR and the caches
        ident = cpus / f"cpu{i}/regs/identification"
        ident.mkdir(parents=True, exist_ok=True)
        (ident / "midr_el1").write_text(f"0x{cpu.midr:016x}\n")
        for n, (level, kind, size, shared) in enumerate(cpu.caches):
            index = cpus / f"cpu{i}/cache/index{n}"
            index.mkdir(parents=True, exist_ok=True)
            for name, value in (("level", str(level)), ("type", kind), ("size", size),
                                ("coherency_line_size", "64"),
                                ("shared_cpu_list", f"{i}" if shared == "core"
                                 else f"0-{cores - 1}")):
                (index / name).write_text(value + "\n")
    entry = ("processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: " + " ".join(guest.features)
             + "\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\n"
             f"CPU part\t: {cpu.midr_part}\nCPU revision\t: 3\n\n")
    (root / "proc").mkdir(exist_ok=True)
    (root / "proc/cpuinfo").write_text("".join(entry.format(i=i) for i in range(cores)))


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


SYSROOT = Sysroot()


def run_bundle(bundle: Path, args: list[str], guest: Guest, timeout: float,
               log: Path | None = None) -> procs.Finished:
    """``python run.py ARGS`` of a bundle on the emulated ``guest`` CPU (through the process
    door)."""
    return procs.run([*SYSROOT.command(guest), str(bundle / "run.py"), *args],
                     what=f"the emulated aarch64 ({guest.qemu}) run", timeout=timeout, log=log,
                     capture=True, cwd=bundle, env=SYSROOT.env())


COUNT_WARMUP, COUNT_WINDOWS = 1, 2  # runs before counting; counted runs (one each)


def count_instructions(bundle: Path, guest: Guest, timeout: float,
                       scratch: Path, log: Path | None = None, warmup: int = COUNT_WARMUP,
                       windows: int = COUNT_WINDOWS) -> dict:
    """Instructions one inference of the bundle executes on the emulated ``guest``, one
    thread, by class: the counted run with the median total (the lower of two), after
    ``warmup`` runs, with the spread of the counted runs. ``{"error": why}`` when it could
    not be counted."""
    scratch.mkdir(parents=True, exist_ok=True)
    out = scratch / "counts.json"
    out.unlink(missing_ok=True)
    cpu = guest.qemu
    done = procs.run([*SYSROOT.command(guest, out), str(GUEST), str(bundle),
                      str(warmup), str(windows)],
                     what=f"counting instructions on the emulated {cpu}", timeout=timeout,
                     log=log, capture=True, cwd=bundle, env=SYSROOT.env())
    try:
        counted = json.loads(out.read_text())["windows"]
    except (OSError, ValueError, KeyError):
        counted = []
    if not done.ok or len(counted) != windows:
        return {"error": f"counting instructions on the emulated {cpu} failed: "
                         f"{done.reason or done.last_line() or 'no counts written'}"}
    totals = sorted(w["total"] for w in counted)
    middle = totals[(len(totals) - 1) // 2]
    median = next(w for w in counted if w["total"] == middle)
    spread = (totals[-1] - totals[0]) / middle if middle else 0.0
    return {"counts": median, "spread": spread, "windows": windows, "threads": 1,
            "cpu": cpu, "seconds": round(done.seconds, 1)}
