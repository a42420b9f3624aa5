"""report.html: one self-contained page (no network, no script, no external CSS) with the
cell matrix, a latency-vs-accuracy scatter plot with its Pareto front, a bundle-size bar
chart (both inline SVG written here), and per cell its gates, attempts and log excerpt."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from edgepack.gates import Gate
from edgepack.report.model import Cell, Report, Status
from edgepack.report.rows import accuracy_numbers, human_bytes, number, summary_lines, table_rows
from edgepack.report.svg import STATUS_COLOURS, plotted, scatter_svg, size_svg

WRAP = ("precision", "top-1", "emulated")  # matrix columns that may wrap (the rest do not)
LOG_LINES = 40  # how much of a failed cell's log the page shows


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
  color:#212529;margin:24px 32px;max-width:1500px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;
  border-bottom:1px solid #dee2e6;padding-bottom:4px}h3{font-size:15px;margin:0 0 6px}
.meta{color:#868e96;margin:0 0 12px}
.verdict{display:inline-block;padding:1px 10px;border-radius:10px;color:#fff;font-weight:600}
.verdict.pass{background:#2f9e44}.verdict.fail{background:#e03131}
ul.summary{padding-left:20px;margin:6px 0}
table{border-collapse:collapse;font-size:13px;margin:4px 0 10px}
td,th{border:1px solid #dee2e6;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f1f3f5;white-space:nowrap}
.wide{overflow-x:auto}table.matrix{width:100%}table.matrix td{white-space:nowrap}
table.matrix td.wrap{white-space:normal}
table.matrix td.reason{white-space:normal;min-width:260px}
.clamp{display:-webkit-box;-webkit-box-orient:vertical;-webkit-line-clamp:3;overflow:hidden}
tr.ok{background:#ebfbee}tr.failed{background:#fff0f0}tr.skipped{background:#f4f4f5;color:#666}
tr.declined{background:#fff4e6}
tr.accepted{background:#ebfbee}tr.rejected{background:#fff0f0}
tr.gate-miss{background:#fff0f0}
.plots{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
figure{margin:0;border:1px solid #dee2e6;border-radius:6px;padding:12px;background:#fff}
figure svg{display:block;max-width:100%;height:auto}
figcaption{color:#868e96;font-size:12px;margin-top:6px;max-width:680px}
svg text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
details.cell{border:1px solid #dee2e6;border-left:6px solid #adb5bd;border-radius:4px;
  margin:6px 0;padding:4px 10px}
details.cell.ok{border-left-color:#2f9e44}details.cell.failed{border-left-color:#e03131}
details.cell.declined{border-left-color:#f08c00}
details.cell>summary{cursor:pointer;padding:2px 0}
details.cell[open]>summary{margin-bottom:6px}
.badge{display:inline-block;min-width:52px;text-align:center;border-radius:8px;color:#fff;
  font-size:12px;font-weight:600;padding:0 6px;margin-right:6px}
.badge.ok{background:#2f9e44}.badge.failed{background:#e03131}.badge.skipped{background:#868e96}
.badge.declined{background:#f08c00}
.key{font-weight:600}.why{color:#495057}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:2px 14px;margin:4px 0 8px}
dl.facts dt{color:#868e96}dl.facts dd{margin:0}
pre.log{background:#212529;color:#e9ecef;padding:8px 10px;border-radius:4px;font-size:12px;
  overflow-x:auto;white-space:pre-wrap;word-break:break-all}
.side{display:flex;flex-wrap:wrap;gap:32px;align-items:flex-start}
code{background:#f1f3f5;padding:0 3px;border-radius:3px}
"""


def to_html(report: Report, folder: Path | None = None) -> str:
    """The page for ``report``; ``folder`` (the report's output folder) lets it quote the
    end of each failed cell's log."""
    esc = html.escape
    title = f"edgepack report — {report.source.get('file', '?')}"
    counts = {s: sum(c.status == s for c in report.cells)
              for s in (Status.OK, Status.FAILED, Status.SKIPPED, Status.DECLINED)}
    verdict = ("<span class='verdict pass'>PASS</span>" if report.ok else
               "<span class='verdict fail'>FAIL</span>")
    parts = [
        "<!doctype html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f"<p class='meta'>{verdict} {counts['ok']} ok, {counts['failed']} failed, "
        f"{counts['skipped']} skipped, {counts['declined']} declined · built "
        f"{esc(str(report.created))} · edgepack "
        f"{esc(str(report.edgepack_version))}</p>",
        "<ul class='summary'>"
        + "".join(f"<li>{_markdown_inline(s)}</li>" for s in summary_lines(report)) + "</ul>",
        "<h2>Cells</h2>", _matrix(report),
        "<h2>Latency, accuracy and size</h2>", "<div class='plots'>",
        _figure("Latency vs accuracy", scatter_svg(report.cells), _scatter_caption(report)),
        _figure("Bundle size", size_svg(report.cells),
                "Bytes of each bundle's model file(s); cells without a bundle have no bar."),
        "</div>",
        "<h2>Cell details</h2>",
        *(_cell_details(c, folder) for c in report.cells),
    ]
    if report.notes:
        parts += ["<h2>Notes</h2>", _list(report.notes)]
    parts += ["<h2>Stages</h2>", _stages(report.stages)]
    parts += ["<h2>Build host and tools</h2>", "<div class='side'>",
              "<div><h3>Host</h3>" + _host(report.host) + "</div>",
              "<div><h3>Tools</h3>" + _kv_table(sorted(report.tools.items())) + "</div>",
              "</div>",
              "<details><summary>Settings and data</summary>"
              + _kv_table([(k, _value(v)) for k, v in report.settings.items()])
              + _kv_table([(k, _value(v)) for k, v in report.data.items()]) + "</details>",
              "<p class='meta'>Every number: report.json (schema "
              f"{esc(str(report.schema_version))}).</p>",
              "</body></html>"]
    return "\n".join(parts) + "\n"


# --- the page's sections ---

def _matrix(report: Report) -> str:
    esc = html.escape
    columns, rows = table_rows(report.cells)
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)

    def td(column: str, value: str) -> str:
        if column == "reason" and value:  # in full in the cell's details below
            return (f"<td class='reason'><div class='clamp' title='{esc(value, quote=True)}'>"
                    f"{esc(value)}</div></td>")
        return f"<td class='wrap'>{esc(value)}</td>" if column in WRAP else f"<td>{esc(value)}</td>"

    body = "\n".join(
        f"<tr class='{esc(status)}'>"
        + "".join(td(c, v) for c, v in zip(columns, values, strict=True)) + "</tr>"
        for status, values in rows)
    return (f"<div class='wide'><table class='matrix'><thead><tr>{head}</tr></thead><tbody>\n"
            f"{body}\n</tbody></table></div>")


def _figure(title: str, svg: str, caption: str) -> str:
    return (f"<figure><h3>{html.escape(title)}</h3>{svg}"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _scatter_caption(report: Report) -> str:
    shown = plotted(report.cells)
    ok = sum(c.status == Status.OK for c in report.cells)
    text = ("One point per verified bundle (measured on the build host). The Pareto front — "
            "no other bundle is both faster and at least as accurate — is highlighted and "
            "joined by a step line.")
    if ok > len(shown):
        text += f" {ok - len(shown)} ok cell(s) without latency or accuracy are not plotted."
    return text


def _cell_details(cell: Cell, folder: Path | None) -> str:
    esc = html.escape
    status = cell.status if cell.status in STATUS_COLOURS else "skipped"
    summary = (f"<span class='badge {status}'>{esc(cell.status)}</span>"
               f"<span class='key'>{esc(cell.key)}</span>")
    if cell.reason:
        summary += f" — <span class='why'>{esc(_shortened(cell.reason))}</span>"
    facts = _facts(cell)
    body = ["<dl class='facts'>" + "".join(
        f"<dt>{esc(k)}</dt><dd>{esc(str(v))}</dd>" for k, v in facts if v not in (None, ""))
        + "</dl>"]
    if cell.gates:
        body.append("<h3>Gates</h3>" + _gates(cell.gates))
    if cell.notes:
        body.append("<h3>Notes</h3>" + _list(cell.notes))
    if cell.attempts:
        body.append("<h3>Attempts</h3>" + _attempts(cell))
    if cell.status == Status.FAILED and folder is not None and cell.log:
        tail = _log_tail(Path(folder) / cell.log)
        if tail is not None:
            body.append(f"<h3>Log: last {LOG_LINES} lines of {esc(cell.log)}</h3>"
                        f"<pre class='log'>{esc(tail)}</pre>")
    opened = " open" if cell.status == Status.FAILED else ""
    return (f"<details class='cell {status}'{opened}><summary>{summary}</summary>"
            + "\n".join(body) + "</details>")


def _facts(cell: Cell) -> list[tuple[str, object]]:
    """The cell's facts, as (label, value) pairs; empty values are left out by the caller."""
    facts = [("status", cell.status), ("reason", cell.reason)]
    if cell.requested:
        facts.append(("requested", "yes (named by --target)"))
    if cell.chosen:
        facts.append(("chosen by --precision auto", cell.chosen))
    if cell.optional:
        facts.append(("optional", "--precision auto chose another cell"))
    lat = cell.latency
    if lat is not None and number(lat.p50) is not None:
        facts.append(("latency", ", ".join(f"{k} {number(v):.4g} ms" for k, v in
                                           (("p50", lat.p50), ("p90", lat.p90), ("p99", lat.p99))
                                           if number(v) is not None)
                      + (f" ({lat.runs} runs, {lat.threads} threads)" if lat.runs else "")))
    if cell.size:
        facts.append(("size", human_bytes(cell.size)))
    if cell.memory and cell.memory.peak_rss_bytes:
        facts.append(("peak RSS", human_bytes(cell.memory.peak_rss_bytes)))
    if cell.speed and cell.speed.speedup:
        facts.append(("speedup over fp32", f"{cell.speed.speedup:.2f}× "
                      f"({cell.speed.source.words})"))
    if cell.timings:
        facts.append(("timings", ", ".join(f"{k.removesuffix('_s')} {v:.1f} s"
                                           for k, v in cell.timings.items()
                                           if number(v) is not None)))
    facts += [("bundle", cell.bundle), ("archive", cell.archive),
              ("archive sha256", cell.archive_sha256),
              ("rejected bundles", cell.failed_bundles and f"{cell.failed_bundles}/"),
              ("log", cell.log)]
    if cell.previous:
        facts.append(("earlier ok bundle", f"{cell.previous.bundle} (built "
                      f"{cell.previous.build.get('created', '?')})"))
    if cell.cached:
        facts.append(("from the build cache", f"built {cell.cached.built} on "
                      f"{cell.cached.host}"))
    if cell.emulated:
        e = cell.emulated
        facts.append(("emulated", e.status + (f" on {e.cpu}" if e.cpu else "")
                      + (f": {e.reason}" if e.reason else "")))
    return facts


def _gates(gates: tuple[Gate, ...]) -> str:
    esc = html.escape
    rows = []
    for g in gates:
        op = "≥" if g.kind == "min" else "≤"
        ok = g.ok
        rows.append(f"<tr class='{'' if ok else 'gate-miss'}'><td>{esc(g.name)}"
                    + (f" <code>{esc(g.label)}</code>" if g.label else "")
                    + f"</td><td>{esc(_value(g.value))}</td>"
                    f"<td>{op} {esc(_value(g.limit))}</td>"
                    f"<td>{'✓ ok' if ok else '✗ missed'}</td></tr>")
    return ("<table><thead><tr><th>gate</th><th>value</th><th>needs</th><th></th></tr>"
            "</thead><tbody>" + "".join(rows) + "</tbody></table>")


def _attempts(cell: Cell) -> str:
    esc = html.escape
    rows = []
    for i, a in enumerate(cell.attempts, 1):
        top1, _, cosine = accuracy_numbers(a.accuracy or {})
        accuracy = " · ".join(x for x in (top1 and f"top-1 {top1}",
                                          cosine and f"cosine {cosine}") if x)
        speed = a.speed.speedup if a.speed else None
        seconds = number(a.seconds)
        rows.append(
            f"<tr class='{esc(a.outcome or '')}'><td>{i}</td><td>{esc(a.strategy or '')}</td>"
            f"<td>{esc(a.model or '')}</td><td>{esc(a.outcome or '')}</td>"
            f"<td>{esc(a.reason or '')}</td>"
            f"<td>{'' if seconds is None else f'{seconds:.1f}'}</td><td>{esc(accuracy)}</td>"
            f"<td>{f'{speed:.2f}×' if number(speed) is not None else ''}</td>"
            f"<td>{esc(a.kept or '')}</td></tr>")
    return ("<table><thead><tr><th>#</th><th>strategy</th><th>model</th><th>outcome</th>"
            "<th>reason</th><th>s</th><th>accuracy</th><th>speedup</th><th>kept in</th>"
            "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _stages(stages: list[dict]) -> str:
    esc = html.escape
    items = []
    for stage in stages:
        detail = stage.get("tool") or stage.get("reason") or ""
        if "size_before" in stage:
            size_after = human_bytes(stage.get("size_after") or 0)
            detail = (f"{stage.get('nodes_before')} → {stage.get('nodes_after')} nodes, "
                      f"{human_bytes(stage['size_before'])} → {size_after}")
        steps = []
        for step in stage.get("steps", []):
            if step.get("status") == "not needed":
                continue
            what = ("; ".join(step.get("changes", [])[:3]) if step.get("status") == "ok"
                    else step.get("reason", ""))
            tool = f" ({step['tool']})" if step.get("tool") else ""
            steps.append(f"<li>{esc(step.get('step', '?'))}{esc(tool)}: "
                         f"{esc(str(step.get('status', '')))} {esc(what or '')}</li>")
        items.append(f"<li><b>{esc(str(stage.get('stage')))}</b>: "
                     f"{esc(str(stage.get('status', '')))} {esc(str(detail))}"
                     + (f"<ul>{''.join(steps)}</ul>" if steps else "") + "</li>")
    return f"<ul>{''.join(items)}</ul>" if items else "<p class='meta'>none recorded</p>"


def _host(host: dict) -> str:
    rows = [(k.removesuffix("_bytes"), human_bytes(v)) if k.endswith("_bytes") and number(v)
            else (k, _value(v)) for k, v in host.items()]
    return _kv_table(rows)


def _kv_table(rows: list[tuple[str, object]]) -> str:
    esc = html.escape
    return ("<table><tbody>" + "".join(f"<tr><th>{esc(str(k))}</th><td>{esc(str(v))}</td></tr>"
                                       for k, v in rows) + "</tbody></table>")


def _list(items: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(str(i))}</li>" for i in items) + "</ul>"


def _markdown_inline(text: str) -> str:
    """The summary lines' **bold** and `code`, as HTML (everything else escaped)."""
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)


def _log_tail(path: Path, lines: int = LOG_LINES) -> str | None:
    """The last ``lines`` lines of a log (reading at most its last 256 KiB), without terminal
    colour codes; None when it cannot be read."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            data = f.read()
    except OSError:
        return None
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", data.decode("utf-8", "replace"))
    return "\n".join(text.splitlines()[-lines:])


# --- numbers ---


def _value(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return "" if value is None else str(value)


def _shortened(text: str, limit: int = 160) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[:limit - 1] + "…"


# --- the plots ---


