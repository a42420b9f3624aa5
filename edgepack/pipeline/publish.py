"""Move a finished build into the output folder, replacing only the cells it built.

Builds of other profiles or targets into the same folder keep their cells (CI jobs can build
parts of a matrix into one folder); the report covers every cell present. A cell that failed
now does not delete an earlier good bundle of the same cell: the bundle stays, and the failed
record says so. A build of a different model file (another sha256) replaces the folder.
Publishing holds a lock on the output folder and defers SIGINT/SIGTERM until it is done.
"""

from __future__ import annotations

import json
import shutil
import signal
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from edgepack import procs
from edgepack.bundle import SUMS, write_sums
from edgepack.pipeline.cells import FAILED
from edgepack.report.junit import to_junit
from edgepack.report.model import Cell, Report, Status
from edgepack.report.records import Previous

REPORT_FILES = ("report.json", "report.md", "report.html")


def publish(stage: Path, out_root: Path, report: Report, built: list[Cell],
            trash: Path) -> tuple[Report, Path]:
    """Merge ``stage`` (this build's model folder) into ``out_root/<name>``; returns the merged
    report (written there as JSON, Markdown and HTML) and the folder."""
    out_root.mkdir(parents=True, exist_ok=True)
    trash.mkdir(parents=True, exist_ok=True)
    final = out_root / stage.name
    with procs.locked(out_root), _signals_deferred():
        previous, note = _read_previous(final)
        notes = [note] if note else []
        if previous is not None and previous.source.get("sha256") != report.source["sha256"]:
            notes.append(
                f"replaced the bundles of a different model file (sha256 "
                f"{previous.source.get('sha256', '?')[:12]}…, built {previous.created})")
            _move_to_trash(final, trash)
            previous = None
        final.mkdir(exist_ok=True)
        merged = {c.key: c for c in previous.cells} if previous else {}
        for cell in built:
            merged[cell.key] = _publish_cell(stage, final, cell, merged.get(cell.key), trash)
        for shared in ("models", "logs/reference.log", "logs/simplify.log"):
            if (stage / shared).exists():
                _replace(stage / shared, final / shared, trash)
        report = replace(report, cells=tuple(merged.values()),
                         notes=(*report.notes, *notes))
        _write_reports(final, report)
        _write_text(final / "junit.xml", to_junit(report))
        write_sums(final, [c.archive for c in report.cells
                           if c.status == Status.OK and c.archive]
                   + [c.previous.archive for c in report.cells if c.previous])
    return report, final


def _publish_cell(stage: Path, final: Path, cell: Cell, old: Cell | None, trash: Path) -> Cell:
    """The cell's files moved into ``final``; its record as published (a failed cell names
    the earlier ok bundle of ``old`` that it could not replace)."""
    if cell.status == Status.SKIPPED:
        return old or cell  # a cell this build did not build replaces nothing
    if cell.log and (stage / cell.log).exists():
        _replace(stage / cell.log, final / cell.log, trash)
    failed = Path(FAILED) / cell.profile / cell.name
    _move_to_trash(final / failed, trash)
    if (stage / failed).exists():
        _replace(stage / failed, final / failed, trash)
    if cell.status == Status.OK:
        _replace(stage / cell.bundle, final / cell.bundle, trash)
        _replace(stage / cell.archive, final / cell.archive, trash)
        return cell
    earlier = old.previous if old is not None and old.previous else (
        Previous(old.bundle, old.archive, old.archive_sha256, old.build)
        if old is not None and old.status == Status.OK else None)
    if earlier and (final / earlier.archive).is_file():
        return replace(cell, previous=earlier).noted(
            f"the bundle of an earlier build ({earlier.build.get('created', '?')}) is still in "
            f"{earlier.bundle}; this build could not replace it")
    return cell


def _read_previous(final: Path) -> tuple[Report | None, str | None]:
    """The report already in the folder, or None with a note when it cannot be read."""
    path = final / "report.json"
    if not path.is_file():
        return None, None
    try:
        return Report.from_json(json.loads(path.read_text())), None
    except (ValueError, TypeError, KeyError) as e:
        return None, (f"could not read the earlier {path.name} ({e}); its cells are not "
                      "listed, their files were left in place")


def _write_reports(final: Path, report: Report) -> None:
    from edgepack.report.html import to_html
    from edgepack.report.render import to_json, to_markdown

    renderers = (to_json, to_markdown, lambda r: to_html(r, final))
    for name, render in zip(REPORT_FILES, renderers, strict=True):
        tmp = final / f".{name}.part"
        tmp.write_text(render(report))
        tmp.replace(final / name)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(text)
    tmp.replace(path)


def _replace(src: Path, dst: Path, trash: Path) -> None:
    """Put ``src`` at ``dst``; whatever was at ``dst`` goes to the trash (deleted with the
    build's work folder)."""
    _move_to_trash(dst, trash)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(src), str(dst))


def _move_to_trash(path: Path, trash: Path) -> None:
    if path.exists() or path.is_symlink():
        dest = trash / f"{len(list(trash.iterdir()))}-{path.name}"
        shutil.move(str(path), str(dest))


@contextmanager
def _signals_deferred():
    """Hold SIGINT and SIGTERM until the block ends (then they are delivered)."""
    signals = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


__all__ = ["publish", "SUMS"]
