"""JSON Schemas of the files edgepack writes, shipped inside the package.

``load("report")`` is the draft 2020-12 schema of ``report.json`` (its ``schema_version``
matches ``edgepack.report.model.SCHEMA_VERSION``).
"""

from __future__ import annotations

import json
from importlib.resources import files


def load(name: str) -> dict:
    """The schema ``name`` ("report", or its file name "report.schema.json") as a dict."""
    filename = name if name.endswith(".json") else f"{name}.schema.json"
    resource = files(__package__).joinpath(filename)
    if not resource.is_file():
        known = sorted(p.name for p in files(__package__).iterdir() if p.name.endswith(".json"))
        raise FileNotFoundError(f"no schema '{name}' in edgepack.schemas (has: "
                                f"{', '.join(known)})")
    return json.loads(resource.read_text(encoding="utf-8"))
