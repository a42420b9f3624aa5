"""Isolated converter environments: pinned venvs in edgepack's cache, called as subprocesses.

onnx2tf pins ~17 exact versions (TensorFlow, numpy, onnx, onnxruntime...), so it never enters
edgepack's own environment. Each toolchain is a venv built from a lock file shipped here;
``edgepack toolchain install NAME`` creates it (explicitly: edgepack never installs anything
behind the user's back) and ``edgepack toolchain list`` shows what is installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgepack.errors import EdgepackError

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Toolchain:
    """One pinned converter environment."""

    name: str  # e.g. "onnx2tf-1.29.24"
    purpose: str  # the target it serves, e.g. "tflite"
    python: tuple[tuple[int, int], tuple[int, int]]  # supported (min, max) minor versions
    size: str  # approximate size once installed
    executable: str  # the console script the target runs

    @property
    def lock(self) -> Path:
        return HERE / f"{self.name}.txt"

    @property
    def path(self) -> Path:
        return cache_dir() / "toolchains" / self.name

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    def lock_digest(self) -> str:
        return hashlib.sha256(self.lock.read_bytes()).hexdigest()[:16]

    def installed(self) -> bool:
        stamp = self.path / "edgepack-toolchain.txt"
        return stamp.is_file() and stamp.read_text().strip() == self.lock_digest()

    def version(self, package: str) -> str | None:
        for line in self.lock.read_text().splitlines():
            name, _, ver = line.partition("==")
            if name.strip().lower() == package.lower():
                return ver.strip()
        return None

    def find_python(self) -> str | None:
        """An interpreter this toolchain can use: this one, one on PATH, or a pyenv one."""
        lo, hi = self.python
        candidates = [sys.executable]
        for minor in range(lo[1], hi[1] + 1):
            found = shutil.which(f"python{lo[0]}.{minor}")
            if found:
                candidates.append(found)
        pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
        if pyenv.is_dir():
            candidates += [str(p / "bin" / "python") for p in sorted(pyenv.iterdir())]
        for exe in candidates:
            version = _python_version(exe)
            if version and lo <= version <= hi:
                return exe
        return None

    def env(self) -> dict[str, str]:
        """Environment for running the toolchain: its bin/ first on PATH (onnx2tf calls
        the onnxsim executable and silently skips simplification without it)."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.path)
        return env


TOOLCHAINS: dict[str, list[Toolchain]] = {
    "tflite": [
        # first: the TensorFlow-free backend, fast where it is right; verification decides
        Toolchain("onnx2tf-2.6.9", "tflite", ((3, 12), (3, 13)), "0.7 GB", "onnx2tf"),
        Toolchain("onnx2tf-1.29.24", "tflite", ((3, 10), (3, 11)), "2.6 GB", "onnx2tf"),
    ],
}


def cache_dir() -> Path:
    """``$EDGEPACK_CACHE_DIR``, else ``$XDG_CACHE_HOME/edgepack``, else ``~/.cache/edgepack``."""
    if os.environ.get("EDGEPACK_CACHE_DIR"):
        return Path(os.environ["EDGEPACK_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgepack"


def _python_version(exe: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run([exe, "-c", "import sys; print(*sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = out.stdout.split()
    return (int(parts[0]), int(parts[1])) if out.returncode == 0 and len(parts) == 2 else None


def get_toolchain(name: str) -> Toolchain:
    for chains in TOOLCHAINS.values():
        for chain in chains:
            if chain.name == name:
                return chain
    raise EdgepackError(f"unknown toolchain '{name}'")


def toolchains_for(name: str) -> list[Toolchain]:
    """The toolchains of a target (``tflite``) or one toolchain by its own name."""
    if name in TOOLCHAINS:
        return TOOLCHAINS[name]
    try:
        return [get_toolchain(name)]
    except EdgepackError:
        known = ", ".join([*TOOLCHAINS, *(c.name for cs in TOOLCHAINS.values() for c in cs)])
        raise EdgepackError(f"unknown toolchain '{name}'; known: {known}") from None


def install(chain: Toolchain, log: Callable[[str], None]) -> None:
    """Create the toolchain's venv from its lock file (atomically: a failed install leaves
    nothing behind). EdgepackError when no suitable Python exists or pip fails."""
    python = chain.find_python()
    if python is None:
        lo, hi = chain.python
        raise EdgepackError(
            f"{chain.name} needs Python {lo[0]}.{lo[1]}-{hi[0]}.{hi[1]}, and none was found "
            f"(looked for python{lo[0]}.{lo[1]}... on PATH and in pyenv)")
    # built in place; the stamp written last marks it complete, a failure removes it all
    shutil.rmtree(chain.path, ignore_errors=True)
    chain.path.parent.mkdir(parents=True, exist_ok=True)
    log(f"creating {chain.name} with {python} (about {chain.size}) in {chain.path}")
    py = str(chain.bin / "python")
    steps = [
        [python, "-m", "venv", str(chain.path)],
        [py, "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        [py, "-m", "pip", "install", "--progress-bar", "off", "--no-deps", "-r", str(chain.lock)],
        [py, "-m", "pip", "check"],
    ]
    for cmd in steps:
        log("$ " + " ".join(cmd))
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            shutil.rmtree(chain.path, ignore_errors=True)
            tail = [ln for ln in (proc.stderr + proc.stdout).splitlines()
                    if ln.strip() and "Location" not in ln][-1:]
            raise EdgepackError(f"installing {chain.name} failed at '{' '.join(cmd[-3:])}': "
                                + (tail[0] if tail else f"exit code {proc.returncode}"))
    (chain.path / "edgepack-toolchain.txt").write_text(chain.lock_digest() + "\n")
    log(f"installed {chain.name}: {disk_usage(chain.path) / 2**30:.1f} GiB")


def disk_usage(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
