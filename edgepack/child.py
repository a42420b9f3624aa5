"""Run one piece of heavy work in its own process, with a timeout and a log.

The parent calls :func:`run_child`; the child is ``python -m edgepack.child TASK SPEC RESULT``.
A converter that crashes, hangs or runs out of memory fails only the task that ran it: the
parent gets a reason (exit signal, timeout, last error line) and the log file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from edgepack.errors import EdgepackError


@dataclass
class ChildResult:
    ok: bool
    result: dict
    reason: str | None
    seconds: float
    log: Path


def run_child(task: str, spec: dict, workdir: Path, log: Path, timeout: float) -> ChildResult:
    """Run ``task`` with ``spec`` in a fresh interpreter; never raises for the child's faults."""
    workdir.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    spec_path = workdir / f"{task}.spec.json"
    result_path = workdir / f"{task}.result.json"
    result_path.unlink(missing_ok=True)
    spec_path.write_text(json.dumps(spec, default=str))
    cmd = [sys.executable, "-m", "edgepack.child", task, str(spec_path), str(result_path)]
    start = time.perf_counter()
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            return ChildResult(False, {}, f"{task} timed out after {timeout:.0f} s",
                               time.perf_counter() - start, log)
        except BaseException:  # Ctrl-C or an error here: take the child and its converter too
            _kill(proc)
            raise
    seconds = time.perf_counter() - start
    result = json.loads(result_path.read_text()) if result_path.is_file() else {}
    if code == 0 and "error" not in result:
        return ChildResult(True, result, None, seconds, log)
    if "error" in result:
        reason = result["error"]
    elif code < 0:
        reason = f"{task} crashed ({signal.Signals(-code).name}); see {log}"
    else:
        reason = f"{task} exited with code {code}; see {log}"
    return ChildResult(False, result, reason, seconds, log)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _main(task: str, spec_path: str, result_path: str) -> int:
    from edgepack import tasks  # the task bodies; imported only in the child

    spec = json.loads(Path(spec_path).read_text())
    try:
        result = getattr(tasks, task)(spec)
    except EdgepackError as e:
        result = {"error": str(e)}
    except Exception as e:  # reported to the parent as this task's failure, with the traceback
        traceback.print_exc()
        last = str(e).strip().splitlines()
        result = {"error": f"{task} failed: {type(e).__name__}: {last[-1] if last else ''}"[:500]}
    result["peak_rss_bytes"] = _peak_rss()
    Path(result_path).write_text(json.dumps(result, default=str))
    return 0


def _peak_rss() -> int:
    from edgepack.device.runner import peak_rss_bytes

    return peak_rss_bytes()


if __name__ == "__main__":
    sys.exit(_main(*sys.argv[1:4]))
