"""report.html: one self-contained page (no network, no script, no external CSS) with the
cell matrix, a latency-vs-accuracy scatter plot with its Pareto front, a bundle-size bar
chart (both inline SVG written here), and per cell its gates, attempts and log excerpt."""

from __future__ import annotations

import html
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from edgepack.report.model import Cell, Report
from edgepack.report.render import _accuracy_numbers, _summary_lines, table_rows

WRAP = ("precision", "top-1", "emulated")  # matrix columns that may wrap (the rest do not)
LOG_LINES = 40  # how much of a failed cell's log the page shows

# colours: one per status, and the plot's
STATUS_COLOURS = {"ok": "#2f9e44", "failed": "#e03131", "skipped": "#adb5bd"}
POINT = "#4263eb"
PARETO = "#e8590c"
GRID = "#e9ecef"
AXIS = "#495057"
TEXT = "#212529"
MUTED = "#868e96"

FONT = 12  # px, of the plots' labels
CHAR = 6.8  # px, a generous average glyph width at FONT (labels are placed by estimate)

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
details.cell>summary{cursor:pointer;padding:2px 0}
details.cell[open]>summary{margin-bottom:6px}
.badge{display:inline-block;min-width:52px;text-align:center;border-radius:8px;color:#fff;
  font-size:12px;font-weight:600;padding:0 6px;margin-right:6px}
.badge.ok{background:#2f9e44}.badge.failed{background:#e03131}.badge.skipped{background:#868e96}
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
    counts = {s: sum(c.status == s for c in report.cells) for s in ("ok", "failed", "skipped")}
    verdict = ("<span class='verdict pass'>PASS</span>" if report.ok else
               "<span class='verdict fail'>FAIL</span>")
    parts = [
        "<!doctype html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f"<p class='meta'>{verdict} {counts['ok']} ok, {counts['failed']} failed, "
        f"{counts['skipped']} skipped · built {esc(str(report.created))} · edgepack "
        f"{esc(str(report.edgepack_version))}</p>",
        "<ul class='summary'>"
        + "".join(f"<li>{_markdown_inline(s)}</li>" for s in _summary_lines(report)) + "</ul>",
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
    points = _points(report.cells)
    ok = sum(c.status == "ok" for c in report.cells)
    text = ("One point per verified bundle (measured on the build host). The Pareto front — "
            "no other bundle is both faster and at least as accurate — is highlighted and "
            "joined by a step line.")
    if ok > len(points):
        text += f" {ok - len(points)} ok cell(s) without latency or accuracy are not plotted."
    return text


def _cell_details(cell: Cell, folder: Path | None) -> str:
    esc = html.escape
    status = cell.status if cell.status in STATUS_COLOURS else "skipped"
    summary = (f"<span class='badge {status}'>{esc(cell.status)}</span>"
               f"<span class='key'>{esc(cell.key)}</span>")
    if cell.reason:
        summary += f" — <span class='why'>{esc(_first_line(cell.reason))}</span>"
    facts = [("status", cell.status), ("reason", cell.reason)]
    if cell.requested:
        facts.append(("requested", "yes (named by --target)"))
    if cell.chosen:
        facts.append(("chosen by --precision auto", cell.chosen))
    if cell.optional:
        facts.append(("optional", "--precision auto chose another cell"))
    lat = cell.latency or {}
    if _num(lat.get("p50")) is not None:
        facts.append(("latency", ", ".join(f"{k} {_num(lat[k]):.4g} ms" for k in
                                           ("p50", "p90", "p99") if _num(lat.get(k)) is not None)
                      + (f" ({lat['runs']} runs, {lat.get('threads')} threads)"
                         if lat.get("runs") else "")))
    if cell.size:
        facts.append(("size", _bytes(cell.size)))
    if (cell.memory or {}).get("peak_rss_bytes"):
        facts.append(("peak RSS", _bytes(cell.memory["peak_rss_bytes"])))
    if (cell.speed or {}).get("speedup"):
        facts.append(("speedup over fp32", f"{cell.speed['speedup']:.2f}×"))
    if cell.timings:
        facts.append(("timings", ", ".join(f"{k.removesuffix('_s')} {v:.1f} s"
                                           for k, v in cell.timings.items()
                                           if _num(v) is not None)))
    facts += [("bundle", cell.bundle), ("archive", cell.archive),
              ("archive sha256", cell.archive_sha256),
              ("rejected bundles", cell.failed_bundles and f"{cell.failed_bundles}/"),
              ("log", cell.log)]
    if cell.previous:
        facts.append(("earlier ok bundle", f"{cell.previous.get('bundle')} (built "
                      f"{(cell.previous.get('build') or {}).get('created', '?')})"))
    if cell.cached:
        facts.append(("from the build cache", f"built {cell.cached.get('built')} on "
                      f"{cell.cached.get('host')}"))
    if cell.emulated:
        e = cell.emulated
        facts.append(("emulated", f"{e.get('status')}" + (f" on {e['cpu']}" if e.get("cpu") else "")
                      + (f": {e['reason']}" if e.get("reason") else "")))
    body = ["<dl class='facts'>" + "".join(
        f"<dt>{esc(k)}</dt><dd>{esc(str(v))}</dd>" for k, v in facts if v not in (None, ""))
        + "</dl>"]
    if cell.gates:
        body.append("<h3>Gates</h3>" + _gates(cell.gates))
    if cell.notes:
        body.append("<h3>Notes</h3>" + _list(cell.notes))
    if cell.attempts:
        body.append("<h3>Attempts</h3>" + _attempts(cell))
    if cell.status == "failed" and folder is not None and cell.log:
        tail = _log_tail(Path(folder) / cell.log)
        if tail is not None:
            body.append(f"<h3>Log: last {LOG_LINES} lines of {esc(cell.log)}</h3>"
                        f"<pre class='log'>{esc(tail)}</pre>")
    opened = " open" if cell.status == "failed" else ""
    return (f"<details class='cell {status}'{opened}><summary>{summary}</summary>"
            + "\n".join(body) + "</details>")


def _gates(gates: list[dict]) -> str:
    esc = html.escape
    rows = []
    for g in gates:
        op = "≥" if g.get("kind") == "min" else "≤"
        ok = g.get("ok")
        rows.append(f"<tr class='{'' if ok else 'gate-miss'}'><td>{esc(str(g.get('name')))}"
                    + (f" <code>{esc(str(g['gate']))}</code>" if g.get("gate") else "")
                    + f"</td><td>{esc(_value(g.get('value')))}</td>"
                    f"<td>{op} {esc(_value(g.get('limit')))}</td>"
                    f"<td>{'✓ ok' if ok else '✗ missed'}</td></tr>")
    return ("<table><thead><tr><th>gate</th><th>value</th><th>needs</th><th></th></tr>"
            "</thead><tbody>" + "".join(rows) + "</tbody></table>")


def _attempts(cell: Cell) -> str:
    esc = html.escape
    rows = []
    for i, a in enumerate(cell.attempts, 1):
        top1, _, cosine = _accuracy_numbers(a.accuracy or {})
        accuracy = " · ".join(x for x in (top1 and f"top-1 {top1}",
                                          cosine and f"cosine {cosine}") if x)
        speed = (a.speed or {}).get("speedup")
        seconds = _num(a.seconds)
        rows.append(
            f"<tr class='{esc(a.outcome or '')}'><td>{i}</td><td>{esc(a.strategy or '')}</td>"
            f"<td>{esc(a.model or '')}</td><td>{esc(a.outcome or '')}</td>"
            f"<td>{esc(a.reason or '')}</td>"
            f"<td>{'' if seconds is None else f'{seconds:.1f}'}</td><td>{esc(accuracy)}</td>"
            f"<td>{f'{speed:.2f}×' if _num(speed) is not None else ''}</td>"
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
            detail = (f"{stage.get('nodes_before')} → {stage.get('nodes_after')} nodes, "
                      f"{_bytes(stage['size_before'])} → {_bytes(stage.get('size_after') or 0)}")
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
    rows = [(k.removesuffix("_bytes"), _bytes(v)) if k.endswith("_bytes") and _num(v)
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

def _num(value) -> float | None:
    """``value`` as a finite float, else None (report.json writes inf/nan as strings)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _value(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return "" if value is None else str(value)


def _bytes(n: float) -> str:
    if n >= 2**30:
        return f"{n / 2**30:.2f} GiB"
    if n >= 2**20:
        return f"{n / 2**20:.2f} MiB"
    return f"{n / 2**10:.1f} KiB"


def _first_line(text: str, limit: int = 160) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[:limit - 1] + "…"


def cell_accuracy(cell: Cell) -> tuple[str, float] | None:
    """What the scatter plot shows as a cell's accuracy: ("top-1", the bundle's top-1) when an
    output has one, else ("cosine", the lowest cosine/match over its outputs)."""
    outputs = (cell.accuracy or {}).get("outputs") or {}
    for m in outputs.values():
        if _num(m.get("top1")) is not None:
            return "top-1", float(m["top1"])
    values = [_num(m.get(k)) for m in outputs.values() for k in ("cosine", "match")]
    values = [v for v in values if v is not None]
    return ("cosine", min(values)) if values else None


# --- the plots ---

@dataclass
class _Point:
    cell: Cell
    latency: float
    metric: str
    accuracy: float
    pareto: bool = False

    @property
    def label(self) -> str:
        return self.cell.key


def _points(cells: list[Cell]) -> list[_Point]:
    points = []
    for cell in cells:
        p50 = _num((cell.latency or {}).get("p50"))
        acc = cell_accuracy(cell)
        if cell.status == "ok" and p50 is not None and p50 > 0 and acc is not None:
            points.append(_Point(cell, p50, acc[0], acc[1]))
    for p in points:  # on the front: no other point is as fast and as accurate, and better in one
        p.pareto = not any(q.latency <= p.latency and q.accuracy >= p.accuracy
                           and (q.latency < p.latency or q.accuracy > p.accuracy)
                           for q in points)
    return points


def pareto_front(cells: list[Cell]) -> list[Cell]:
    """The ok cells no other is both faster and at least as accurate than, fastest first."""
    return [p.cell for p in sorted(_points(cells), key=lambda p: p.latency) if p.pareto]


def _nice_ticks(lo: float, hi: float, count: int = 5) -> tuple[list[float], int]:
    """Round ticks within [lo, hi] and the decimals their labels need."""
    raw = (hi - lo) / count
    mag = 10.0 ** math.floor(math.log10(raw))
    mult = next(m for m in (1, 2, 2.5, 5, 10) if raw <= m * mag * (1 + 1e-9))
    step = mult * mag
    decimals = max(0, -math.floor(math.log10(step) + 1e-9) + (1 if mult == 2.5 else 0))
    first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    return [k * step for k in range(first, last + 1)], min(decimals, 12)


def _log_ticks(lo: float, hi: float) -> list[float]:
    ticks = []
    for mult in ((1,), (1, 2, 5), (1, 2, 3, 5, 7)):
        ticks = [m * 10.0 ** e for e in range(math.floor(math.log10(lo)),
                                              math.ceil(math.log10(hi)) + 1)
                 for m in mult if lo <= m * 10.0 ** e <= hi]
        if len(ticks) >= 4:
            break
    return ticks


def _ms(value: float) -> str:
    return f"{value:.4g}"


class _Scale:
    """Data to pixels along one axis (optionally logarithmic)."""

    def __init__(self, lo: float, hi: float, start: float, end: float, log: bool = False):
        self.log = log
        self.lo, self.hi = (math.log10(lo), math.log10(hi)) if log else (lo, hi)
        self.start, self.end = start, end

    def __call__(self, value: float) -> float:
        v = math.log10(value) if self.log else value
        return self.start + (v - self.lo) / (self.hi - self.lo) * (self.end - self.start)


def _padded(lo: float, hi: float, log: bool = False, single: float = 0.005
            ) -> tuple[float, float]:
    """A data range around [lo, hi] with room for the points at its edges; one value gets
    ±``single`` of itself (at least 1e-4) around it."""
    if log:
        a, b = math.log10(lo), math.log10(hi)
        return 10 ** (a - (b - a) * 0.08), 10 ** (b + (b - a) * 0.08)
    if hi - lo <= abs(hi) * 1e-12:
        half = max(abs(hi) * single, 1e-4)
        lo, hi = lo - half, hi + half
    pad = (hi - lo) * 0.08
    return lo - pad, hi + pad


def _text(x: float, y: float, text: str, anchor: str = "start", size: int = FONT,
          fill: str = TEXT, extra: str = "") -> str:
    return (f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}' text-anchor='{anchor}' "
            f"fill='{fill}'{extra}>{html.escape(text)}</text>")


def _svg(width: float, height: float, body: list[str], label: str) -> str:
    return (f"<svg width='{width:.0f}' height='{height:.0f}' viewBox='0 0 {width:.0f} "
            f"{height:.0f}' role='img' aria-label='{html.escape(label, quote=True)}'>"
            + "\n".join(body) + "</svg>")


def scatter_svg(cells: list[Cell], width: int = 700, height: int = 440) -> str:
    """Latency (x, p50 ms) against accuracy (y) of the ok cells, the Pareto front highlighted."""
    points = _points(cells)
    metrics = {p.metric for p in points}
    percent = metrics == {"top-1"}
    y_title = ("top-1 accuracy of the bundle" if percent else
               "accuracy: lowest cosine / match over outputs" if metrics == {"cosine"} else
               "accuracy: top-1, else lowest cosine / match")
    if not points:
        left, top, right, bottom = 70, 20, width - 20, height - 55
        return _svg(width, height, [
            f"<rect x='{left}' y='{top}' width='{right - left}' height='{bottom - top}' "
            f"fill='#f8f9fa' stroke='{GRID}'/>",
            _text((left + right) / 2, (top + bottom) / 2, "no verified bundles", "middle", 16,
                  MUTED),
            _text((left + right) / 2, height - 14, "p50 latency (ms)", "middle"),
            _text(18, (top + bottom) / 2, "accuracy", "middle",
                  extra=f" transform='rotate(-90 18 {(top + bottom) / 2:.1f})'"),
        ], "latency vs accuracy: no verified bundles")

    lats = [p.latency for p in points]
    accs = [p.accuracy for p in points]
    log = max(lats) / min(lats) > 10
    x_lo, x_hi = _padded(min(lats), max(lats), log, single=0.3)
    x_lo = x_lo if log else max(x_lo, 0.0)
    y_lo, y_hi = _padded(min(accs), max(accs))
    if max(accs) <= 1 < y_hi:  # cosine and top-1 never pass 1: little room above it
        y_hi = 1 + min(y_hi - 1, (y_hi - y_lo) * 0.04)
    y_ticks, y_dec = _nice_ticks(y_lo, y_hi)

    def y_label(t: float) -> str:
        return f"{t * 100:.{max(0, y_dec - 2)}f}%" if percent else f"{t:.{y_dec}f}"

    left = 44 + CHAR * max(len(y_label(t)) for t in y_ticks)
    top, right, bottom = 34, width - 18, height - 56
    sx = _Scale(x_lo, x_hi, left, right, log)
    sy = _Scale(y_lo, y_hi, bottom, top)
    if log:
        x_ticks, x_labels = _log_ticks(x_lo, x_hi), None
    else:
        x_ticks, x_dec = _nice_ticks(x_lo, x_hi)
        x_labels = [f"{t:.{x_dec}f}" for t in x_ticks]
    body = [f"<rect x='{left:.1f}' y='{top}' width='{right - left:.1f}' "
            f"height='{bottom - top}' fill='#fff' stroke='{AXIS}'/>"]
    for i, t in enumerate(x_ticks):
        x = sx(t)
        body.append(f"<line x1='{x:.1f}' y1='{top}' x2='{x:.1f}' y2='{bottom}' stroke='{GRID}'/>")
        body.append(f"<line x1='{x:.1f}' y1='{bottom}' x2='{x:.1f}' y2='{bottom + 5}' "
                    f"stroke='{AXIS}'/>")
        body.append(_text(x, bottom + 19, x_labels[i] if x_labels else _ms(t), "middle"))
    for t in y_ticks:
        y = sy(t)
        body.append(f"<line x1='{left:.1f}' y1='{y:.1f}' x2='{right}' y2='{y:.1f}' "
                    f"stroke='{GRID}'/>")
        body.append(f"<line x1='{left - 5:.1f}' y1='{y:.1f}' x2='{left:.1f}' y2='{y:.1f}' "
                    f"stroke='{AXIS}'/>")
        body.append(_text(left - 8, y + 4, y_label(t), "end"))
    body.append(f"<rect x='{left:.1f}' y='{top}' width='{right - left:.1f}' "
                f"height='{bottom - top}' fill='none' stroke='{AXIS}'/>")
    body.append(_text((left + right) / 2, height - 16,
                      "p50 latency (ms" + (", log scale" if log else "") + ") — lower is better",
                      "middle", FONT + 1))
    mid = (top + bottom) / 2
    body.append(_text(16, mid, y_title + " — higher is better", "middle", FONT + 1,
                      extra=f" transform='rotate(-90 16 {mid:.1f})'"))

    front = sorted((p for p in points if p.pareto), key=lambda p: (p.latency, p.accuracy))
    placed: list[tuple[float, float, float, float]] = []  # what labels must not cover
    if len(front) > 1:
        path = f"M{sx(front[0].latency):.1f},{sy(front[0].accuracy):.1f}"
        for a, b in zip(front, front[1:], strict=False):
            (x0, y0), (x1, y1) = (sx(a.latency), sy(a.accuracy)), (sx(b.latency), sy(b.accuracy))
            path += f" H{x1:.1f} V{y1:.1f}"
            placed += [(x0, y0 - 2, x1, y0 + 2), (x1 - 2, min(y0, y1), x1 + 2, max(y0, y1))]
        body.append(f"<path class='pareto-front' d='{path}' fill='none' stroke='{PARETO}' "
                    "stroke-width='2' "
                    "stroke-linejoin='round' stroke-dasharray='6 3'/>")
    # legend, above the plot area
    body += [f"<circle cx='{left + 8:.1f}' cy='16' r='5' fill='{PARETO}' stroke='#fff'/>",
             _text(left + 18, 20, "Pareto front (nothing both faster and more accurate)"),
             f"<circle cx='{left + 360:.1f}' cy='16' r='4' fill='{POINT}' stroke='#fff'/>",
             _text(left + 370, 20, "other verified bundles")]

    marks = [(sx(p.latency), sy(p.accuracy)) for p in points]
    for p, (x, y) in zip(points, marks, strict=True):
        colour, r = (PARETO, 6) if p.pareto else (POINT, 4.5)
        value = f"{p.accuracy * 100:.2f}%" if p.metric == "top-1" else f"{p.accuracy:.6f}"
        body.append(f"<circle class='point{' pareto' if p.pareto else ''}' cx='{x:.1f}' "
                    f"cy='{y:.1f}' r='{r}' fill='{colour}' stroke='#fff' "
                    f"stroke-width='1.5'><title>{html.escape(p.label)}: p50 "
                    f"{_ms(p.latency)} ms, {p.metric} {value}</title></circle>")
    order = sorted(range(len(points)), key=lambda i: (not points[i].pareto, marks[i][0]))
    for i in order:
        p, (x, y) = points[i], marks[i]
        body += _place_label(p.label, x, y, marks, placed, (left, top, right, bottom),
                             PARETO if p.pareto else TEXT, p.pareto)
    return _svg(width, height, body, "latency vs accuracy")


def _place_label(label: str, x: float, y: float, marks: list[tuple[float, float]],
                 placed: list[tuple[float, float, float, float]],
                 area: tuple[float, float, float, float], colour: str, bold: bool) -> list[str]:
    """A point's label at the first spot near it that overlaps no other label or point and
    stays inside the plot (further spots get a leader line); the least crowded otherwise."""
    w, h = CHAR * len(label) + (6 if bold else 0), FONT + 2
    candidates = [(9, 4, "start"), (-9, 4, "end"), (0, -10, "middle"), (0, 19, "middle"),
                  (7, -9, "start"), (7, 17, "start"), (-7, -9, "end"), (-7, 17, "end")]
    for d in (24, 38, 52, 66, 80):
        candidates += [(0, -d, "middle"), (0, d + 9, "middle"), (6, -d, "start"),
                       (6, d + 9, "start"), (-6, -d, "end"), (-6, d + 9, "end")]
    best = None
    for dx, dy, anchor in candidates:
        tx, ty = x + dx, y + dy
        x0 = tx if anchor == "start" else tx - w if anchor == "end" else tx - w / 2
        box = (x0, ty - h + 3, x0 + w, ty + 3)
        inside = (box[0] >= area[0] + 2 and box[2] <= area[2] - 2 and box[1] >= area[1] + 2
                  and box[3] <= area[3] - 2)
        crowd = sum(_overlap(box, b) for b in placed) + sum(
            _overlap(box, (mx - 6, my - 6, mx + 6, my + 6)) for mx, my in marks)
        score = crowd + (0 if inside else 1e6) + abs(dy) * 0.01
        if best is None or score < best[0]:
            best = (score, tx, ty, anchor, box, dy)
        if inside and crowd == 0:
            break
    _, tx, ty, anchor, box, dy = best
    placed.append(box)
    out = []
    if abs(dy) > 20:  # a leader line from the point to a label placed further away
        ly = box[3] - 1 if dy < 0 else box[1] + 1
        out.append(f"<line x1='{x:.1f}' y1='{y:.1f}' x2='{tx:.1f}' y2='{ly:.1f}' "
                   f"stroke='{MUTED}' stroke-width='0.8'/>")
    out.append(f"<rect x='{box[0] - 1:.1f}' y='{box[1]:.1f}' width='{box[2] - box[0] + 2:.1f}' "
               f"height='{box[3] - box[1]:.1f}' fill='#fff' fill-opacity='0.8'/>")
    out.append(_text(tx, ty, label, anchor, fill=colour,
                     extra=" font-weight='600'" if bold else ""))
    return out


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def size_svg(cells: list[Cell], width: int = 520) -> str:
    """One horizontal bar per cell: the bytes of its bundle's model file(s)."""
    rows = [(c.key, c.status, c.size if c.size and c.size > 0 else None) for c in cells]
    if not rows:
        return _svg(width, 60, [_text(width / 2, 34, "no cells", "middle", 16, MUTED)],
                    "bundle size: no cells")
    bar, gap = 20, 8
    left = 12 + CHAR * max(len(k) for k, _, _ in rows)
    left = min(left, width * 0.45)
    top, right = 12, width - 86
    bottom = top + len(rows) * (bar + gap)
    height = bottom + 46
    sizes = [s for _, _, s in rows if s]
    big = max(sizes) if sizes else 0
    unit, div = ("MiB", 2**20) if big >= 2**20 else ("KiB", 2**10)
    body = []
    if sizes:
        ticks, dec = _nice_ticks(0, big / div, 4)
        if ticks[-1] < big / div:  # the axis ends on a tick past the largest bar
            ticks.append(ticks[-1] + (ticks[1] - ticks[0] if len(ticks) > 1 else big / div))
        hi = ticks[-1]
        scale = _Scale(0, hi, left, right)
        for t in ticks:
            x = scale(t)
            body.append(f"<line x1='{x:.1f}' y1='{top - 4}' x2='{x:.1f}' y2='{bottom}' "
                        f"stroke='{GRID}'/>")
            body.append(_text(x, bottom + 16, f"{t:.{dec}f}", "middle"))
    body.append(f"<line x1='{left:.1f}' y1='{top - 4}' x2='{left:.1f}' y2='{bottom}' "
                f"stroke='{AXIS}'/>")
    for i, (key, status, size) in enumerate(rows):
        y = top + i * (bar + gap)
        body.append(_text(left - 8, y + bar / 2 + 4, key, "end",
                          fill=TEXT if status == "ok" else MUTED))
        if size and sizes:
            x = scale(size / div)
            colour = STATUS_COLOURS.get(status, MUTED)
            body.append(f"<rect x='{left:.1f}' y='{y}' width='{max(x - left, 1):.1f}' "
                        f"height='{bar}' fill='{colour}' rx='2'><title>{html.escape(key)}: "
                        f"{size} bytes</title></rect>")
            body.append(_text(x + 6, y + bar / 2 + 4, _bytes(size), "start"))
        else:
            body.append(_text(left + 8, y + bar / 2 + 4, f"no bundle ({status})", "start",
                              fill=MUTED, extra=" font-style='italic'"))
    body.append(_text((left + right) / 2, height - 10, f"bundle size ({unit})", "middle",
                      FONT + 1))
    return _svg(width, height, body, "bundle size per cell")
