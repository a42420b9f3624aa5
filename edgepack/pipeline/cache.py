"""A content-addressed build cache (``--cache DIR`` or the config's ``cache = "DIR"``).

An unchanged rebuild restores every cell instead of lowering, verifying and benchmarking it
again. Keys are sha256 digests of everything a result depends on:

- ``prepare/<key>``: the model's digest (``source_sha256``: the file, a SavedModel's files, or
  an entry point's file and weights) and entry point name, whether calibration data is
  needed, edgepack's version and every tool's version, and every option marked
  ``cache=PREPARE`` in :mod:`edgepack.options` (data files by their sha256, input shapes,
  fixed inputs...). Holds the report's source/data/stages/notes, the ``models/`` folder and
  the reference logs.
- ``cells/<key[:2]>/<key>``: the prepare key, the profile's full contents, the target,
  precision, variant and its strategies, every option marked ``cache=CELL`` (budgets, speed
  gate, release gates, target options, threads, --emulate, --remote, --vendor-wheels...),
  and the measuring host (CPU model, CPU count, architecture): a cache restored on another
  kind of runner misses instead of reusing another machine's latency. Holds ``cell.json``
  and the cell's bundle, archive, log and rejected attempts.

Benchmark settings (runs, min time, warm-up, rounds) are not part of a key: a hit keeps the
cached latency, says so in the report, and ``--rebench`` times the restored bundle again.
Entries are written to a temporary name and renamed, so a killed build never leaves a half
entry; the whole folder can be saved and restored by a CI cache action keyed on the model,
the data and the config.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from edgepack.importers.base import Source
from edgepack.options import CELL, PREPARE, BuildOptions, cache_values
from edgepack.pipeline.importing import source_sha256
from edgepack.pipeline.plan import PlannedCell, target_options_for
from edgepack.report.model import Cell, Status

CACHE_FORMAT = 2  # 2: keys from the option table, strategies whole
SHARED = ("models", "logs/reference.log", "logs/simplify.log")


def digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


class BuildCache:
    def __init__(self, root: Path) -> None:
        from edgepack.report.model import host_info

        self.root = root
        host = host_info()  # the machine whose latency cached cells carry
        self.host = [host["cpu"], host["cpus"], host["machine"]]

    # ------------------------------------------------------------------ keys
    def prepare_key(self, opts: BuildOptions, source: Source, needs_calib: bool) -> str:
        from edgepack.pipeline.tools import tool_versions
        from edgepack.version import __version__

        return digest({
            "format": CACHE_FORMAT, "edgepack": __version__, "tools": tool_versions(),
            "model": source_sha256(source), "entry": source.entry, "needs_calib": needs_calib,
            "options": cache_values(opts, PREPARE),
        })

    def cell_key(self, prepare_key: str, opts: BuildOptions, p: PlannedCell) -> str:
        profile = {k: v for k, v in p.profile.to_dict().items() if k != "source"}
        return digest({
            "prepare": prepare_key, "profile": profile, "target": p.target.name,
            "precision": p.cell.precision, "variant": p.cell.variant,
            "strategies": [s.to_dict() for s in p.strategies],
            "target_options": target_options_for(opts, p.target),
            "options": cache_values(opts, CELL), "host": self.host,
        })

    # ------------------------------------------------------------------ prepare entries
    def _prepare_dir(self, key: str) -> Path:
        return self.root / "prepare" / key

    def load_prepare(self, key: str) -> dict | None:
        entry = self._prepare_dir(key)
        try:
            return json.loads((entry / "prepare.json").read_text())
        except (OSError, ValueError):
            return None

    def restore_prepare(self, key: str, stage: Path) -> None:
        entry = self._prepare_dir(key)
        for rel in SHARED:
            if (entry / rel).exists():
                _copy(entry / rel, stage / rel)

    def store_prepare(self, key: str, record: dict, stage: Path) -> None:
        def fill(tmp: Path) -> None:
            (tmp / "prepare.json").write_text(json.dumps(record, default=str))
            for rel in SHARED:
                if (stage / rel).exists():
                    _copy(stage / rel, tmp / rel)
        self._store(self._prepare_dir(key), fill)

    # ------------------------------------------------------------------ cell entries
    def _cell_dir(self, key: str) -> Path:
        return self.root / "cells" / key[:2] / key

    def has_cell(self, key: str) -> bool:
        return (self._cell_dir(key) / "cell.json").is_file()

    def restore_cell(self, key: str, stage: Path) -> Cell | None:
        """The cached cell, its files copied into ``stage``; None on a miss."""
        entry = self._cell_dir(key)
        try:
            cell = Cell.from_json(json.loads((entry / "cell.json").read_text()))
        except (OSError, ValueError, TypeError, KeyError):
            return None
        for rel in _cell_files(cell):
            if (entry / "files" / rel).exists():
                _copy(entry / "files" / rel, stage / rel)
            elif rel in (cell.bundle, cell.archive):
                return None  # a damaged entry: build the cell again
        return cell

    def store_cell(self, key: str, cell: Cell, stage: Path) -> None:
        if cell.status not in (Status.OK, Status.FAILED) or cell.boards:
            return  # board results are the board's, now: never replayed from a cache
        def fill(tmp: Path) -> None:
            (tmp / "cell.json").write_text(json.dumps(cell.to_json(), default=str))
            for rel in _cell_files(cell):
                if (stage / rel).exists():
                    _copy(stage / rel, tmp / "files" / rel)
        self._store(self._cell_dir(key), fill)

    def _store(self, entry: Path, fill) -> None:
        if entry.exists():
            return
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=entry.parent))
        try:
            fill(tmp)
            os.rename(tmp, entry)
        except OSError:  # another build stored it first, or the disk is full: not an error
            shutil.rmtree(tmp, ignore_errors=True)


def _cell_files(cell: Cell) -> list[str]:
    return [rel for rel in (cell.bundle, cell.archive, cell.log, cell.failed_bundles) if rel]


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
    else:
        shutil.copy2(src, dst)
