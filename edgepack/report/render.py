"""Render a Report as JSON, Markdown, HTML and a terminal table, from one set of rows."""

from __future__ import annotations

import json
import math

from edgepack.report.model import Cell, Report, Status
from edgepack.report.rows import summary_lines, table_rows


def to_json(report: Report) -> str:
    """Strict JSON (non-finite numbers become the strings "inf", "-inf", "nan")."""
    return json.dumps(_strict(report.to_json()), indent=2, allow_nan=False, default=str) + "\n"


def _strict(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


def to_markdown(report: Report) -> str:
    lines = [f"# edgepack report — {report.source['file']}", ""]
    lines += [f"- {s}" for s in summary_lines(report)]
    columns, rows = table_rows(report.cells)
    lines += ["", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, values in rows:
        lines.append("| " + " | ".join(v.replace("|", "\\|") for v in values) + " |")
    for title, section in (("Skipped and declined", _skipped),
                           ("Verified on an emulated CPU (--emulate)", _emulated_section),
                           ("Boards (--remote)", _boards),
                           ("Restored from the build cache (--cache)", _cached),
                           ("Kept for inspection", _kept), ("Notes", _notes),
                           ("Stages", _stages), ("Gates missed", _gates_missed),
                           ("Tools", _tools)):
        items = section(report)
        if items or title == "Stages":
            lines += ["", f"## {title}", "", *items]
    return "\n".join(lines) + "\n"


def _skipped(report: Report) -> list[str]:
    return [f"- {c.key} ({c.status}): {c.reason}" for c in report.cells
            if c.status in (Status.SKIPPED, Status.DECLINED)]


def _emulated_section(report: Report) -> list[str]:
    lines = []
    for c in (c for c in report.cells if c.emulated):
        e = c.emulated
        lines.append(f"- {c.key}: {e.status}" + (f", {e.verified_on}" if e.verified_on else "")
                     + (f": {e.reason}" if e.reason else
                        f" ({e.selftest})" if e.selftest else ""))
    return lines


def _boards(report: Report) -> list[str]:
    lines = []
    for c, b in ((cell, b) for cell in report.cells for b in cell.boards):
        ident, runtime = b.identity or {}, b.runtime or {}
        lines.append(f"- {c.key} on {b.remote}: {b.status}; "
                     + ", ".join(f"{k} {ident[k]}" for k in ("model", "machine", "kernel",
                                                              "python") if ident.get(k))
                     + (f", {runtime.get('runtime')} {runtime.get('version')}"
                        if runtime else "")
                     + (f": {b.reason}" if b.reason else ""))
    return lines


def _cached(report: Report) -> list[str]:
    return [f"- {c.key}: built {c.cached.built} on {c.cached.host}; "
            + ("re-timed now (--rebench)" if c.cached.rebenchmarked else
               "latency and memory are that build's (--rebench times it again)")
            for c in report.cells if c.cached]


def _kept(report: Report) -> list[str]:
    lines = []
    for c in report.cells:
        if c.failed_bundles:
            lines.append(f"- {c.key}: rejected bundles and log in `{c.failed_bundles}/`")
        if c.previous:
            built = c.previous.build.get("created")
            lines.append(f"- {c.key}: the earlier ok bundle is still in "
                         f"`{c.previous.bundle}` (built {built})")
    return lines


def _notes(report: Report) -> list[str]:
    return [f"- {n}" for n in report.notes]


def _stages(report: Report) -> list[str]:
    lines = []
    for stage in report.stages:
        detail = stage.get("tool") or stage.get("reason") or ""
        if "size_before" in stage:
            detail = (f"{stage['nodes_before']} → {stage['nodes_after']} nodes, "
                      f"{stage['size_before'] / 1024:.1f} → {stage['size_after'] / 1024:.1f} KiB")
        lines.append(f"- **{stage['stage']}**: {stage.get('status', '')} {detail}".rstrip())
        for step in stage.get("steps", []):
            if step["status"] == "not needed":
                continue
            what = "; ".join(step.get("changes", [])[:3]) if step["status"] == "ok" else \
                step.get("reason", "")
            tool = f" ({step['tool']})" if step.get("tool") else ""
            lines.append(f"  - {step['step']}{tool}: {step['status']} {what}".rstrip())
    return lines


def _gates_missed(report: Report) -> list[str]:
    lines = []
    for cell in report.cells:
        for g in cell.gates:
            if not g.ok:
                op = ">=" if g.kind == "min" else "<="
                lines.append(f"- {cell.key}: {g.name} = {g.value:.6g} (needs {op} {g.limit:g})"
                             + (f" — gate `{g.label}`" if g.label else ""))
    return lines


def _tools(report: Report) -> list[str]:
    return [f"- {k} {v}" for k, v in sorted(report.tools.items())]


def terminal_table(report: Report, cells: list[Cell] | None = None):
    """A rich Table of ``cells`` (default: all the report's; the caller prints it)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"edgepack build — {report.source['file']}")
    columns, rows = table_rows(report.cells if cells is None else cells)
    for col in columns[:-1]:  # reasons are printed below the table
        table.add_column(col, no_wrap=col == "status")
    style = {"ok": "green", "failed": "red", "skipped": "dim", "declined": "yellow"}
    for status, values in rows:
        # "[f32]" and shapes would otherwise be read as rich markup and vanish
        table.add_row(*map(escape, values[:-1]), style=style.get(status))
    return table
