"""A content-addressed build cache (``--cache DIR`` or the config's ``cache = "DIR"``).

An unchanged rebuild restores every cell instead of lowering, verifying and benchmarking it
again. Keys are sha256 digests of everything a result depends on:

- ``prepare/<key>``: the model's digest (``source_sha256``: the file, a SavedModel's files, or
  an entry point's file and weights) and entry point name, the
  data files' sha256, input shapes and fixed inputs, whether calibration data is needed,
  edgepack's version and every tool's version. Holds the report's source/data/stages/notes,
  the ``models/`` folder and the reference logs.
- ``cells/<key[:2]>/<key>``: the prepare key, the profile's full contents, the target,
  precision, variant and its strategies, every setting that changes lowering, verification
  or gating (budgets, speed gate, release gates, target options, threads, --emulate,
  --remote, --vendor-wheels), and the measuring host (CPU model, CPU count, architecture):
  a cache restored on another kind of runner misses instead of reusing another machine's
  latency. Holds ``cell.json`` and the cell's bundle, archive, log and rejected attempts.

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

from edgepack.artifact import sha256_file
from edgepack.importers import parse_model
from edgepack.pipeline.importing import source_sha256
from edgepack.pipeline.options import BuildOptions
from edgepack.pipeline.plan import PlannedCell, target_options_for
from edgepack.report.model import Cell

CACHE_FORMAT = 1
SHARED = ("models", "logs/reference.log", "logs/simplify.log")


def digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _file_digest(path: Path | None) -> str | None:
    return sha256_file(path) if path is not None and path.is_file() else None


class BuildCache:
    def __init__(self, root: Path) -> None:
        from edgepack.report.model import host_info

        self.root = root
        host = host_info()  # the machine whose latency cached cells carry
        self.host = [host["cpu"], host["cpus"], host["machine"]]

    # ------------------------------------------------------------------ keys
    def prepare_key(self, opts: BuildOptions, needs_calib: bool) -> str:
        from edgepack import __version__
        from edgepack.pipeline import tool_versions

        source = parse_model(opts.model, opts.weights, opts.trust_pickle)
        return digest({
            "format": CACHE_FORMAT, "edgepack": __version__, "tools": tool_versions(),
            "model": source_sha256(source), "entry": source.entry,
            "trust_pickle": opts.trust_pickle,
            "data": {k: _file_digest(v) for k, v in
                     (("data", opts.data), ("eval", opts.eval), ("calib", opts.calib))},
            "input_shapes": opts.input_shapes, "fixed_inputs": opts.fixed_inputs,
            "needs_calib": needs_calib,
            "allow_synthetic_calibration": opts.allow_synthetic_calibration,
        })

    def cell_key(self, prepare_key: str, opts: BuildOptions, p: PlannedCell) -> str:
        profile = {k: v for k, v in p.profile.to_dict().items() if k != "source"}
        return digest({
            "prepare": prepare_key, "profile": profile, "target": p.target.name,
            "precision": p.cell.precision, "variant": p.cell.variant,
            "strategies": [s.name for s in p.strategies],
            "options": target_options_for(opts, p.target), "threads": opts.threads,
            "budget": [opts.max_accuracy_drop, opts.min_cosine, opts.min_speedup],
            "calibration": opts.calibration_method, "strategy": opts.strategy,
            "limits": [vars(x) for x in opts.limits], "emulate": opts.emulate,
            "remotes": list(opts.remotes), "vendor_wheels": opts.vendor_wheels,
            "host": self.host,
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
            cell = Cell.from_dict(json.loads((entry / "cell.json").read_text()))
        except (OSError, ValueError, TypeError, KeyError):
            return None
        for rel in _cell_files(cell):
            if (entry / "files" / rel).exists():
                _copy(entry / "files" / rel, stage / rel)
            elif rel in (cell.bundle, cell.archive):
                return None  # a damaged entry: build the cell again
        return cell

    def store_cell(self, key: str, cell: Cell, stage: Path) -> None:
        if cell.status not in ("ok", "failed") or cell.boards:
            return  # board results are the board's, now: never replayed from a cache
        def fill(tmp: Path) -> None:
            (tmp / "cell.json").write_text(json.dumps(cell.to_dict(), default=str))
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
