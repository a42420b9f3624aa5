"""Reading what a build wrote, the same way in every test: its report.json and its cells."""

from __future__ import annotations

import json
from pathlib import Path


def read_report(out: Path, model: str = "digits_cnn") -> dict:
    """The report.json of ``model`` in the output folder ``out``."""
    return json.loads((Path(out) / model / "report.json").read_text())


def cells_by_key(report: dict, profile: bool = True) -> dict[str, dict]:
    """The report's cells by key, PROFILE/TARGET-PRECISION[-VARIANT] (by name,
    TARGET-PRECISION[-VARIANT], with ``profile=False``: a one-profile build)."""
    return {(f"{c['profile']}/" if profile else "") + f"{c['target']}-{c['precision']}"
            + (f"-{c['variant']}" if c.get("variant") else ""): c for c in report["cells"]}


def cells_in(out: Path, model: str = "digits_cnn", profile: bool = True) -> dict[str, dict]:
    """The cells of ``model``'s report in ``out``, by key (or by name)."""
    return cells_by_key(read_report(out, model), profile)
