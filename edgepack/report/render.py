"""Render a Report as JSON, Markdown, HTML and a terminal table, from one set of rows."""

from __future__ import annotations

import json
import math
from pathlib import Path

from edgepack.report.model import Cell, Report

COLUMNS = ("profile", "target", "precision", "status", "top-1", "agreement", "cosine",
           "emulated", "p50 ms", "speedup", "p90 ms", "cold ms", "peak RSS", "size", "reason")


def _accuracy_numbers(outputs: dict) -> tuple[str, str, str]:
    top1 = agree = ""
    cosines = [m["cosine"] for m in outputs.values() if "cosine" in m]
    cosines += [m["match"] for m in outputs.values() if "match" in m]
    for m in outputs.values():
        if "top1" in m:
            top1 = f"{m['top1'] * 100:.2f}%"
            if "top1_reference" in m:
                top1 += f" ({m['top1_reference'] * 100:.2f}%)"
        if "top1_agreement" in m:
            agree = f"{m['top1_agreement'] * 100:.2f}%"
    # a report read back from JSON holds non-finite numbers as strings ("nan", "inf")
    numbers = [c for c in cosines if isinstance(c, int | float)]
    cosine = f"{min(numbers):.5f}" if numbers else ("nan" if cosines else "")
    return top1, agree, cosine


def _timing(latency: dict | None, memory: dict | None) -> tuple[str, str, str, str]:
    """p50, p90, cold start and peak RSS, formatted."""
    lat = latency or {}
    cold = lat.get("cold_start_ms") or {}
    mem = (memory or {}).get("peak_rss_bytes")
    return (f"{lat['p50']:.3f}" if "p50" in lat else "",
            f"{lat['p90']:.3f}" if "p90" in lat else "",
            f"{cold['load'] + cold['first_inference']:.1f}" if cold else "",
            f"{mem / 2**20:.0f} MiB" if mem else "")


def table_rows(cells: list[Cell]) -> tuple[tuple[str, ...], list[tuple[str, list[str]]]]:
    """The columns and the (status, values) rows of ``cells``: one row per cell, then one
    per board it ran on (--remote), with the board's own accuracy and latency. Optional
    columns that are empty in every row are left out."""
    rows = []
    for cell in cells:
        rows.append((cell.status, cell_row(cell)))
        rows += [(b.get("status", "failed"), board_row(cell, b)) for b in cell.boards]
    keep = [i for i, col in enumerate(COLUMNS)
            if col not in OPTIONAL or any(values[i] for _, values in rows)]
    return (tuple(COLUMNS[i] for i in keep),
            [(status, [values[i] for i in keep]) for status, values in rows])


OPTIONAL = ("emulated", "speedup", "top-1", "agreement")


def board_row(cell: Cell, board: dict) -> list[str]:
    """A board's own numbers for a cell's bundle (accuracy gated like the host's)."""
    top1, agree, cosine = _accuracy_numbers(board.get("outputs") or {})
    p50, p90, cold, rss = _timing(board.get("latency"), board.get("memory"))
    ident = board.get("identity") or {}
    where = ", ".join(v for v in (ident.get("machine"), ident.get("model")) if v)
    return ["", "", f"↳ on {board['remote']}" + (f" ({where})" if where else ""),
            board.get("status", "failed"), top1, agree, cosine, "", p50, "", p90, cold, rss,
            "", board.get("reason") or ""]


def cell_row(cell: Cell) -> list[str]:
    top1, agree, cosine = _accuracy_numbers((cell.accuracy or {}).get("outputs", {}))
    p50, p90, cold, rss = _timing(cell.latency, cell.memory)
    precision = cell.precision + (f" ({cell.variant})" if cell.variant else "")
    precision += " ← auto" if cell.chosen else ""
    measured = (cell.runtime or {}).get("inference_precision")
    if measured:
        precision += f" [{_short_type(measured)}]"
    return [
        cell.profile, cell.target, precision, cell.status, top1, agree, cosine, _emulated(cell),
        p50, _speedup(cell), p90, cold, rss,
        f"{cell.size / 1024:.1f} KiB" if cell.size else "", cell.reason or "",
    ]


def _emulated(cell: Cell) -> str:
    """The accuracy measured on the emulated CPU, beside the host's: 'a72 ✓ 1.00000'."""
    e = cell.emulated or {}
    if not e:
        return ""
    if e.get("status") == "not emulated":
        return "not emulated"
    values = [m.get("cosine", m.get("match")) for m in (e.get("outputs") or {}).values()]
    values = [v for v in values if isinstance(v, float)]
    mark = "ok" if e["status"] == "ok" else "FAILED"
    cpu = e.get("cpu", "").replace("cortex-", "")
    return f"{cpu} {mark} {min(values):.5f}" if values else f"{cpu} {mark}"


def _speedup(cell: Cell) -> str:
    """The speedup over fp32, e.g. '1.52×' (timed interleaved; see cell.speed)."""
    speed = cell.speed or {}
    return f"{speed['speedup']:.2f}×" if speed.get("speedup") else ""


def _short_type(ov_type: str) -> str:
    """'<Type: 'bfloat16'>' -> 'bf16' (how OpenVINO prints its element types)."""
    for long, short in (("bfloat16", "bf16"), ("float16", "f16"), ("float32", "f32")):
        if long in ov_type:
            return short
    return ov_type


def to_json(report: Report) -> str:
    """Strict JSON (non-finite numbers become the strings "inf", "-inf", "nan")."""
    return json.dumps(_strict(report.to_dict()), indent=2, allow_nan=False, default=str) + "\n"


def _strict(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


def _summary_lines(report: Report) -> list[str]:
    host = report.host
    counts = {s: sum(c.status == s for c in report.cells) for s in ("ok", "failed", "skipped")}
    evaluation, calib = report.data.get("eval") or {}, report.data.get("calib") or {}
    split = report.data.get("split")
    if split:
        held = (f"; --data split (seed {split['seed']}): {split['calib_samples']} samples "
                f"calibrate, the other {split['eval_samples']} evaluate")
    elif report.data.get("in_sample"):
        held = "; **in-sample**: accuracy is measured on the calibration samples"
    else:
        held = ""
    return [
        f"Source: `{report.source['file']}` (sha256 {report.source['sha256'][:12]}…)",
        f"Result: **{'PASS' if report.ok else 'FAIL'}** — {counts['ok']} ok, "
        f"{counts['failed']} failed, {counts['skipped']} skipped",
        f"Accuracy data: {evaluation.get('kind', '?')} ({evaluation.get('source', '?')}); "
        f"calibration: {calib.get('kind', 'none')} ({calib.get('source', '-')}){held}",
        f"Measured on the build host, not on the device: {host['cpu']} ({host['machine']}, "
        f"{host['cpus']} CPUs), {host['os']}, Python {host['python']}. top-1 shows the bundle "
        "(reference in brackets); cosine is the lowest over outputs; speedup is the fp32 "
        "bundle's p50 over this one's, same profile and target, timed interleaved in fresh "
        "processes (medians)."
        + (" Rows marked ↳ were measured on the named board (--remote): its own accuracy, "
           "latency and memory; its identity is in report.json."
           if any(c.boards for c in report.cells) else "")
        + (" The emulated column is the accuracy measured on the profile's CPU model under "
           "qemu (--emulate; no latency is taken there)."
           if any(c.emulated for c in report.cells) else ""),
    ]


def to_markdown(report: Report) -> str:
    lines = [f"# edgepack report — {report.source['file']}", ""]
    lines += [f"- {s}" for s in _summary_lines(report)]
    columns, rows = table_rows(report.cells)
    lines += ["", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, values in rows:
        lines.append("| " + " | ".join(v.replace("|", "\\|") for v in values) + " |")
    skipped = [c for c in report.cells if c.status == "skipped"]
    if skipped:
        lines += ["", "## Skipped", ""]
        lines += [f"- {c.key}: {c.reason}" for c in skipped]
    emulated = [c for c in report.cells if c.emulated]
    if emulated:
        lines += ["", "## Verified on an emulated CPU (--emulate)", ""]
        for c in emulated:
            e = c.emulated
            where = e.get("verified_on", "")
            lines.append(f"- {c.key}: {e['status']}" + (f", {where}" if where else "")
                         + (f": {e['reason']}" if e.get("reason") else
                            f" ({e['selftest']})" if e.get("selftest") else ""))
    boards = [(c, b) for c in report.cells for b in c.boards]
    if boards:
        lines += ["", "## Boards (--remote)", ""]
        for c, b in boards:
            ident = b.get("identity") or {}
            runtime = b.get("runtime") or {}
            lines.append(f"- {c.key} on {b['remote']}: {b.get('status')}; "
                         + ", ".join(f"{k} {ident[k]}" for k in ("model", "machine", "kernel",
                                                                  "python") if ident.get(k))
                         + (f", {runtime.get('runtime')} {runtime.get('version')}"
                            if runtime else "")
                         + (f": {b['reason']}" if b.get("reason") else ""))
    cached = [c for c in report.cells if c.cached]
    if cached:
        lines += ["", "## Restored from the build cache (--cache)", ""]
        lines += [f"- {c.key}: built {c.cached.get('built')} on {c.cached.get('host')}; "
                  + ("re-timed now (--rebench)" if c.cached.get("rebenchmarked") else
                     "latency and memory are that build's (--rebench times it again)")
                  for c in cached]
    kept = [c for c in report.cells if c.previous or c.failed_bundles]
    if kept:
        lines += ["", "## Kept for inspection", ""]
        for c in kept:
            if c.failed_bundles:
                lines.append(f"- {c.key}: rejected bundles and log in `{c.failed_bundles}/`")
            if c.previous:
                built = c.previous["build"].get("created")
                lines.append(f"- {c.key}: the earlier ok bundle is still in "
                             f"`{c.previous['bundle']}` (built {built})")
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report.notes]
    lines += ["", "## Stages", ""]
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
    failed = [c for c in report.cells if c.gates and not all(g["ok"] for g in c.gates)]
    if failed:
        lines += ["", "## Gates missed", ""]
        for cell in failed:
            for g in cell.gates:
                if not g["ok"]:
                    op = ">=" if g["kind"] == "min" else "<="
                    lines.append(f"- {cell.key}: {g['name']} = {g['value']:.6g} "
                                 f"(needs {op} {g['limit']:g})"
                                 + (f" — gate `{g['gate']}`" if g.get("gate") else ""))
    lines += ["", "## Tools", ""] + [f"- {k} {v}" for k, v in sorted(report.tools.items())]
    return "\n".join(lines) + "\n"


def to_html(report: Report, folder: Path | None = None) -> str:
    """report.html (see edgepack.report.html); ``folder``, the report's output folder, lets
    it quote the end of each failed cell's log."""
    from edgepack.report.html import to_html as render

    return render(report, folder)


def terminal_table(report: Report, cells: list[Cell] | None = None):
    """A rich Table of ``cells`` (default: all the report's; the caller prints it)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"edgepack build — {report.source['file']}")
    columns, rows = table_rows(report.cells if cells is None else cells)
    for col in columns[:-1]:  # reasons are printed below the table
        table.add_column(col, no_wrap=col == "status")
    style = {"ok": "green", "failed": "red", "skipped": "dim"}
    for status, values in rows:
        # "[f32]" and shapes would otherwise be read as rich markup and vanish
        table.add_row(*map(escape, values[:-1]), style=style.get(status))
    return table
