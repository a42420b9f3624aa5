"""Merge the output folders of ``edgepack build --cell`` jobs (a CI matrix) into one output
folder: every cell's bundle, archive and log, one report and one ``SHA256SUMS``.

Each input is copied to a scratch folder and published like a build, so a merge follows the
same rules (cells replaced by key, a skipped cell replaces nothing, the output folder locked
while it changes); the inputs are never modified.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from edgepack.errors import UsageError
from edgepack.pipeline.options import check_output, nearest_existing
from edgepack.pipeline.publish import publish
from edgepack.report.model import Report, Status, model_folders, read_report


def merge(folders: list[Path], output: Path, prefer: Path | None = None) -> list[Report]:
    """Merge the folders into ``output``; a cell built differently in two of them is an
    error unless ``prefer`` names the folder whose cell wins."""
    if not folders:
        raise UsageError("report merge: pass one or more folders to merge")
    out_root = output.absolute()
    by_model: dict[str, list[Path]] = {}
    for folder in folders:
        if out_root == folder.absolute() or out_root in folder.absolute().parents:
            raise UsageError(f"report merge: the output {output} is one of the inputs; pass a "
                             "new folder with -o")
        for model in model_folders(folder):
            by_model.setdefault(model.name, []).append(model)
    reports = {name: [read_report(d / "report.json") for d in dirs]
               for name, dirs in by_model.items()}
    for name, rs in reports.items():
        check_output(output, name)
        shas = {r.source.get("sha256") for r in rs}
        if len(shas) > 1:
            raise UsageError(f"report merge: the {name} folders were built from different model "
                             f"files (sha256 {', '.join(sorted(s[:12] for s in shas if s))}); "
                             "merge only the cells of one build")
    for name in by_model:
        by_model[name], reports[name] = _ordered(by_model[name], reports[name], prefer)
        _check_overlaps(name, by_model[name], reports[name], prefer)
    merged = []
    with tempfile.TemporaryDirectory(prefix=".edgepack-merge-",
                                     dir=nearest_existing(out_root.parent)) as tmp:
        work = Path(tmp)
        for name, dirs in by_model.items():
            report = None
            parts = list(reports[name])
            parts[-1] = replace(parts[-1], notes=(*parts[-1].notes,
                                                  *_merge_notes(dirs, parts)))
            for i, (folder, part) in enumerate(zip(dirs, parts, strict=True)):
                stage = work / str(i) / name
                shutil.copytree(folder, stage, symlinks=True)
                built = [c for c in part.cells if c.status != Status.PENDING]
                report, _ = publish(stage, out_root, part, built, work / "trash")
            merged.append(report)
    return merged


def _merge_notes(dirs: list[Path], reports: list[Report]) -> list[str]:
    """What the merged report says about parts built on different hosts or data."""
    notes = []
    hosts = {f"{r.host.get('cpu')} ({r.host.get('cpus')} CPUs, "
             f"{r.host.get('hostname')})" for r in reports}
    if len(hosts) > 1:
        notes.append("merged from cell builds on different hosts: " + "; ".join(sorted(hosts))
                     + " — each cell's latency is its own host's (see its build record)")
    data = {json.dumps(r.data, sort_keys=True) for r in reports}
    if len(data) > 1:
        notes.append("merged from builds that evaluated on different data (their cells' "
                     "accuracy records name their samples): " + "; ".join(
                         f"{d}: {_data_words(r.data)}" for d, r in zip(dirs, reports,
                                                                        strict=True)))
    return notes


def _ordered(dirs: list[Path], reports: list[Report], prefer: Path | None
             ) -> tuple[list[Path], list[Report]]:
    """The preferred folder last: it is published last, so its cells win."""
    if prefer is None:
        return dirs, reports
    pairs = sorted(zip(dirs, reports, strict=True), key=lambda dr: _within(dr[0], prefer))
    return [d for d, _ in pairs], [r for _, r in pairs]


def _within(folder: Path, prefer: Path) -> bool:
    folder, prefer = folder.absolute(), prefer.absolute()
    return folder == prefer or prefer in folder.parents


def _check_overlaps(name: str, dirs: list[Path], reports: list[Report],
                    prefer: Path | None) -> None:
    """UsageError for a cell that two inputs hold with different bundles (or outcomes),
    unless one of them is in the preferred folder."""
    seen: dict[str, tuple[Path, str]] = {}
    for folder, report in zip(dirs, reports, strict=True):
        for cell in report.cells:
            if cell.status in (Status.PENDING, Status.SKIPPED):
                continue
            mine = cell.archive_sha256 or cell.status
            if cell.key in seen and seen[cell.key][1] != mine:
                other = seen[cell.key][0]
                if prefer is not None and (_within(folder, prefer) or _within(other, prefer)):
                    continue
                raise UsageError(
                    f"report merge: {name} cell {cell.key} differs between {other} "
                    f"({_what(seen[cell.key][1])}) and {folder} ({_what(mine)}); merge only "
                    "one of them, or pass --prefer FOLDER to keep that folder's")
            seen[cell.key] = (folder, mine)


def _what(mark: str) -> str:
    return f"sha256 {mark[:12]}…" if len(mark) == 64 else mark


def _data_words(data: dict) -> str:
    evaluation = data.get("eval") or {}
    return f"{evaluation.get('samples', '?')} {evaluation.get('kind', '?')} samples"
