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
from pathlib import Path

from edgepack.errors import UsageError
from edgepack.pipeline.options import check_output, nearest_existing
from edgepack.pipeline.publish import publish
from edgepack.report.model import Report


def model_folders(folder: Path) -> list[Path]:
    """``folder`` itself if it holds a report.json, else its subfolders that do."""
    if not folder.is_dir():
        raise UsageError(f"report merge: {folder} is not a folder; pass the output folders "
                         "(-o) of edgepack build --cell jobs")
    if (folder / "report.json").is_file():
        return [folder]
    found = sorted(p.parent for p in folder.glob("*/report.json"))
    if not found:
        raise UsageError(f"report merge: {folder} holds no report.json (nor do its subfolders); "
                         "pass the output folders (-o) of edgepack build --cell jobs")
    return found


def read_report(path: Path) -> Report:
    try:
        return Report.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise UsageError(f"{path} is not an edgepack report.json ({e})") from None


def merge(folders: list[Path], output: Path) -> list[Report]:
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
    merged = []
    with tempfile.TemporaryDirectory(prefix=".edgepack-merge-",
                                     dir=nearest_existing(out_root.parent)) as tmp:
        work = Path(tmp)
        for name, dirs in by_model.items():
            report = None
            hosts = {f"{r.host.get('cpu')} ({r.host.get('cpus')} CPUs, "
                     f"{r.host.get('hostname')})" for r in reports[name]}
            if len(hosts) > 1:
                reports[name][-1].notes.append(
                    "merged from cell builds on different hosts: " + "; ".join(sorted(hosts))
                    + " — each cell's latency is its own host's (see its build record)")
            for i, (folder, part) in enumerate(zip(dirs, reports[name], strict=True)):
                stage = work / str(i) / name
                shutil.copytree(folder, stage, symlinks=True)
                built = [c for c in part.cells if c.status != "pending"]
                report, _ = publish(stage, out_root, part, built, work / "trash")
            merged.append(report)
    return merged
