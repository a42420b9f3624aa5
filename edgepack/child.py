"""Run one piece of heavy work in its own process, through the one process door.

The parent calls :func:`run_task` with a typed spec (see :mod:`edgepack.tasks`); the child is
``python -m edgepack.child TASK SPEC.json RESULT.json``. A converter that crashes, hangs or
runs out of memory fails only the task that ran it: the parent gets a reason (signal,
timeout, the task's own error line) and the log file. A child that exits without writing its
result has failed, whatever its exit code.
"""

from __future__ import annotations

import json
import sys
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

from edgepack import procs
from edgepack.errors import EdgepackError


@dataclass(frozen=True)
class TaskResult:
    ok: bool
    result: dict
    reason: str | None
    seconds: float
    log: Path
    user_error: bool = False  # the task raised an EdgepackError (bad model or data)

    @property
    def peak_rss_bytes(self) -> int | None:
        return self.result.get("peak_rss_bytes")


def run_task(spec, workdir: Path, log: Path, timeout: float) -> TaskResult:
    """Run ``spec``'s task in a fresh interpreter; never raises for the child's faults."""
    task = spec.task
    workdir.mkdir(parents=True, exist_ok=True)
    spec_path = workdir / f"{task}.spec.json"
    result_path = workdir / f"{task}.result.json"
    result_path.unlink(missing_ok=True)
    spec_path.write_text(json.dumps(asdict(spec), default=str))
    done = procs.run([sys.executable, "-m", "edgepack.child", task, spec_path, result_path],
                     what=task, timeout=timeout, log=log)
    result = _read_result(result_path)
    if done.ok and result is not None and "error" not in result:
        return TaskResult(True, result, None, done.seconds, log)
    result = result or {}
    if "error" in result:
        reason = result["error"]
    else:  # the log's last line, quoted: the log itself may be in a folder removed at exit
        reason = (f"{task} exited without writing its result" if done.ok else done.reason) \
            + _last_line(log)
    return TaskResult(False, result, reason, done.seconds, log,
                      user_error=bool(result.get("user_error")))


def _last_line(log: Path) -> str:
    """``: <the last line this task wrote to its log>`` (at most 300 characters), or
    nothing."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 8192))
            lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines()]
    except OSError:
        return ""
    starts = [i for i, ln in enumerate(lines) if ln.startswith("$ ")]  # procs.run's header
    mine = [ln for ln in lines[starts[-1] + 1 if starts else 0:] if ln]
    return f": {mine[-1][:300]}" if mine else ""


def _read_result(path: Path) -> dict | None:
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) else None


def _main(task: str, spec_path: str, result_path: str) -> int:
    from edgepack import tasks  # the task bodies; imported only in the child
    from edgepack.device.core import peak_rss_bytes

    spec_cls, body = tasks.TASKS[task]
    spec = spec_cls(**json.loads(Path(spec_path).read_text()))
    try:
        result = body(spec)
    except EdgepackError as e:
        result = {"error": str(e), "user_error": True}
    except Exception as e:  # reported to the parent as this task's failure, with the traceback
        traceback.print_exc()
        last = str(e).strip().splitlines()
        result = {"error": f"{task} failed: {type(e).__name__}: {last[-1] if last else ''}"[:500]}
    result["peak_rss_bytes"] = peak_rss_bytes()
    Path(result_path).write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(_main(*sys.argv[1:4]))
