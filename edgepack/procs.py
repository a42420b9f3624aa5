"""The one door for every process edgepack starts.

Converters, evaluations, selftests, benchmarks, toolchain installs, emulators and SSH all go
through :func:`run`: each gets its own process group, a timeout, and on timeout, Ctrl-C or
SIGTERM the whole process tree beneath it is killed (found through ``/proc``, so a
grandchild in a group of its own dies too). On Linux each child also dies when its parent
does. The result says why a process failed instead of raising for the process's faults.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

_LIVE: set[subprocess.Popen] = set()
_PR_SET_PDEATHSIG = 1
ADDR_NO_RANDOMIZE = 0x0040000


@dataclass(frozen=True)
class Finished:
    """How a process ended. ``reason`` is None only for exit code 0 within the timeout."""

    returncode: int | None  # None: killed for the timeout (or it could not start)
    seconds: float
    reason: str | None
    output: str = ""  # stdout + stderr, when captured

    @property
    def ok(self) -> bool:
        return self.reason is None

    def last_line(self) -> str:
        lines = [ln for ln in self.output.strip().splitlines() if ln.strip()]
        return lines[-1] if lines else ""


def _preexec(no_aslr: bool) -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None

    def setup() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # die with the parent
        if no_aslr:
            libc.personality(ADDR_NO_RANDOMIZE)

    return setup


def run(cmd: Sequence[str], *, what: str, timeout: float, log: Path | None = None,
        capture: bool = False, cwd: Path | None = None, env: dict | None = None,
        no_aslr: bool = False, stdin: Path | None = None,
        stdout: Path | None = None) -> Finished:
    """Run ``cmd`` to completion or until ``timeout`` seconds; never raises for its faults.

    ``what`` names the process in reasons ("the selftest", "onnx2tf-1.29.24").
    Output goes to ``log`` (appended) and, with ``capture``, is returned as well.
    ``no_aslr`` disables address randomization (for tools whose output depends on it).
    ``stdin`` feeds a file to the process; ``stdout`` sends its standard output to a file
    (then only its standard error goes to ``log``).
    Interrupts (Ctrl-C, SIGTERM, any exception while waiting) kill the tree, then propagate.
    """
    cmd = [str(c) for c in cmd]
    start = time.perf_counter()
    with _output_file(log) as out:
        if log is not None:
            out.write(f"$ {' '.join(cmd)}\n".encode())
            out.flush()
        begin = out.tell()
        try:
            with contextlib.ExitStack() as files:
                src = files.enter_context(open(stdin, "rb")) if stdin else subprocess.DEVNULL
                dst = files.enter_context(open(stdout, "wb")) if stdout else out
                proc = subprocess.Popen(cmd, stdout=dst,
                                        stderr=out if stdout else subprocess.STDOUT,
                                        stdin=src, cwd=cwd, env=env, start_new_session=True,
                                        preexec_fn=_preexec(no_aslr))
        except OSError as e:
            return Finished(None, 0.0, f"{what} could not start: {e.strerror or e}")
        _LIVE.add(proc)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tree(proc)
            code = None
        except BaseException:
            kill_tree(proc)
            raise
        finally:
            _LIVE.discard(proc)
        seconds = time.perf_counter() - start
        output = ""
        if capture:
            out.seek(begin)
            output = out.read().decode(errors="replace")
    if code is None:
        reason = f"{what} timed out after {timeout:g} s"
    elif code < 0:
        reason = f"{what} crashed ({signal.Signals(-code).name})"
    elif code > 0:
        reason = f"{what} exited with code {code}"
    else:
        reason = None
    return Finished(code, seconds, reason, output)


class _output_file:  # noqa: N801 - used as a context manager like open()
    """The log file opened for appending, or an anonymous temporary file."""

    def __init__(self, log: Path | None) -> None:
        self.log = log

    def __enter__(self):
        if self.log is None:
            self.f = tempfile.TemporaryFile()
        else:
            Path(self.log).parent.mkdir(parents=True, exist_ok=True)
            self.f = open(self.log, "a+b")  # noqa: SIM115 - closed in __exit__
        return self.f

    def __exit__(self, *exc) -> None:
        self.f.close()


def _children() -> dict[int, list[int]]:
    """ppid -> child pids, read from /proc (empty where there is no /proc)."""
    tree: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return tree
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1:
            tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def descendants(pid: int) -> list[int]:
    """Every process beneath ``pid``."""
    tree, found, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc``, its process group, and every descendant and their groups."""
    pids = [proc.pid, *descendants(proc.pid)]
    for pid in pids:
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:  # pragma: no cover - a process in uninterruptible sleep
        pass


def kill_all() -> None:
    """Kill every process started through :func:`run` that is still alive."""
    for proc in list(_LIVE):
        kill_tree(proc)
        _LIVE.discard(proc)


@contextlib.contextmanager
def locked(folder: Path):
    """An exclusive lock on ``folder`` (flock on the directory itself: no lock file left),
    held by one process at a time: concurrent builds publishing into one output folder, or
    two CI jobs installing the same toolchain, wait for each other."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
