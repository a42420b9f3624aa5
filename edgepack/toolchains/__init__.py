"""Isolated converter environments: pinned venvs in edgepack's cache, called as subprocesses.

Some converters pin dozens of exact versions (TensorFlow, numpy, onnx...), so they never enter
edgepack's own environment. Each toolchain is a venv built from a lock file shipped in this
folder (``<toolchain name>.txt``) and declared by the target that uses it;
``edgepack toolchain install NAME`` creates it (explicitly: edgepack never installs anything
behind the user's back) and ``edgepack toolchain list`` shows what is installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgepack import procs
from edgepack.errors import EdgepackError

HERE = Path(__file__).resolve().parent
INSTALL_TIMEOUT = 3600.0  # seconds for each pip step


@dataclass(frozen=True)
class Toolchain:
    """One pinned converter environment."""

    name: str  # e.g. "converter-1.2.3"; its lock file is <name>.txt in this folder
    purpose: str  # the target it serves
    python: tuple[tuple[int, int], tuple[int, int]]  # supported (min, max) minor versions
    size: str  # approximate size once installed
    executable: str  # the console script the target runs
    shown: tuple[str, ...] = ()  # pinned packages worth showing in lists and reports

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
        if not self.lock.is_file():
            return None
        wanted = package.lower().replace("_", "-")
        for line in self.lock.read_text().splitlines():
            name, _, ver = line.partition("==")
            if name.strip().lower().replace("_", "-") == wanted:
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


def cache_dir() -> Path:
    """``$EDGEPACK_CACHE_DIR``, else ``$XDG_CACHE_HOME/edgepack``, else ``~/.cache/edgepack``."""
    if os.environ.get("EDGEPACK_CACHE_DIR"):
        return Path(os.environ["EDGEPACK_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgepack"


def _python_version(exe: str) -> tuple[int, int] | None:
    done = procs.run([exe, "-c", "import sys; print(*sys.version_info[:2])"],
                     what="a Python interpreter", timeout=30, capture=True)
    parts = done.last_line().split()
    return (int(parts[0]), int(parts[1])) if done.ok and len(parts) == 2 else None


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
    try:
        for cmd in steps:
            log("$ " + " ".join(cmd))
            done = procs.run(cmd, what=f"installing {chain.name}", timeout=INSTALL_TIMEOUT,
                             capture=True)
            if not done.ok:
                tail = [ln for ln in done.output.splitlines()
                        if ln.strip() and "Location" not in ln and not ln.startswith("$ ")][-1:]
                raise EdgepackError(f"installing {chain.name} failed at '{' '.join(cmd[-3:])}': "
                                    + (tail[0] if tail else done.reason))
    except BaseException:
        shutil.rmtree(chain.path, ignore_errors=True)
        raise
    (chain.path / "edgepack-toolchain.txt").write_text(chain.lock_digest() + "\n")
    log(f"installed {chain.name}: {disk_usage(chain.path) / 2**30:.1f} GiB")


def disk_usage(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
