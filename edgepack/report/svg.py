"""The report's two plots as inline SVG (no script, no external file): latency against
accuracy with the Pareto front, and bundle sizes."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

from edgepack.report.model import Cell, Status
from edgepack.report.rows import human_bytes, number

# colours: one per status, and the plot's
STATUS_COLOURS = {"ok": "#2f9e44", "failed": "#e03131", "skipped": "#adb5bd",
                  "declined": "#f08c00"}


POINT = "#4263eb"


PARETO = "#e8590c"


GRID = "#e9ecef"


AXIS = "#495057"


TEXT = "#212529"


MUTED = "#868e96"


FONT = 12  # px, of the plots' labels


CHAR = 6.8  # px, a generous average glyph width at FONT (labels are placed by estimate)



def cell_accuracy(cell: Cell) -> tuple[str, float] | None:
    """What the scatter plot shows as a cell's accuracy: ("top-1", the bundle's top-1) when an
    output has one, else ("cosine", the lowest cosine/match over its outputs)."""
    outputs = (cell.accuracy or {}).get("outputs") or {}
    for m in outputs.values():
        if number(m.get("top1")) is not None:
            return "top-1", float(m["top1"])
    values = [number(m.get(k)) for m in outputs.values() for k in ("cosine", "match")]
    values = [v for v in values if v is not None]
    return ("cosine", min(values)) if values else None


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



def plotted(cells: list[Cell]) -> list[_Point]:
    points = []
    for cell in cells:
        p50 = number(cell.latency.p50) if cell.latency else None
        acc = cell_accuracy(cell)
        if cell.status == Status.OK and p50 is not None and p50 > 0 and acc is not None:
            points.append(_Point(cell, p50, acc[0], acc[1]))
    for p in points:  # on the front: no other point is as fast and as accurate, and better in one
        p.pareto = not any(q.latency <= p.latency and q.accuracy >= p.accuracy
                           and (q.latency < p.latency or q.accuracy > p.accuracy)
                           for q in points)
    return points



def pareto_front(cells: list[Cell]) -> list[Cell]:
    """The ok cells no other is both faster and at least as accurate than, fastest first."""
    return [p.cell for p in sorted(plotted(cells), key=lambda p: p.latency) if p.pareto]



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
    points = plotted(cells)
    metrics = {p.metric for p in points}
    percent = metrics == {"top-1"}
    y_title = ("top-1 accuracy of the bundle" if percent else
               "accuracy: lowest cosine / match over outputs" if metrics == {"cosine"} else
               "accuracy: top-1, else lowest cosine / match")
    if not points:
        return _empty_scatter(width, height)
    frame, body = _scatter_axes(points, percent, y_title, width, height)
    front = sorted((p for p in points if p.pareto), key=lambda p: (p.latency, p.accuracy))
    placed: list[tuple[float, float, float, float]] = []  # what labels must not cover
    body += _front_line(front, frame, placed)
    left = frame.box[0]
    # legend, above the plot area
    body += [f"<circle cx='{left + 8:.1f}' cy='16' r='5' fill='{PARETO}' stroke='#fff'/>",
             _text(left + 18, 20, "Pareto front (nothing both faster and more accurate)"),
             f"<circle cx='{left + 360:.1f}' cy='16' r='4' fill='{POINT}' stroke='#fff'/>",
             _text(left + 370, 20, "other verified bundles")]
    marks = [(frame.sx(p.latency), frame.sy(p.accuracy)) for p in points]
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
        body += _place_label(p.label, x, y, marks, placed, frame.box,
                             PARETO if p.pareto else TEXT, p.pareto)
    return _svg(width, height, body, "latency vs accuracy")


@dataclass(frozen=True)
class _Frame:
    """The plot area in pixels and the scales into it."""

    box: tuple[float, float, float, float]  # left, top, right, bottom
    sx: _Scale
    sy: _Scale


def _empty_scatter(width: int, height: int) -> str:
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


def _scatter_axes(points: list[_Point], percent: bool, y_title: str, width: int,
                  height: int) -> tuple[_Frame, list[str]]:
    """The frame, grid, ticks and axis titles around the points."""
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
    sx, sy = _Scale(x_lo, x_hi, left, right, log), _Scale(y_lo, y_hi, bottom, top)
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
    return _Frame((left, top, right, bottom), sx, sy), body


def _front_line(front: list[_Point], frame: _Frame,
                placed: list[tuple[float, float, float, float]]) -> list[str]:
    """The Pareto front's step line; what it covers is added to ``placed``."""
    if len(front) < 2:
        return []
    sx, sy = frame.sx, frame.sy
    path = f"M{sx(front[0].latency):.1f},{sy(front[0].accuracy):.1f}"
    for a, b in zip(front, front[1:], strict=False):
        (x0, y0), (x1, y1) = (sx(a.latency), sy(a.accuracy)), (sx(b.latency), sy(b.accuracy))
        path += f" H{x1:.1f} V{y1:.1f}"
        placed += [(x0, y0 - 2, x1, y0 + 2), (x1 - 2, min(y0, y1), x1 + 2, max(y0, y1))]
    return [f"<path class='pareto-front' d='{path}' fill='none' stroke='{PARETO}' "
            "stroke-width='2' stroke-linejoin='round' stroke-dasharray='6 3'/>"]


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
            body.append(_text(x + 6, y + bar / 2 + 4, human_bytes(size), "start"))
        else:
            body.append(_text(left + 8, y + bar / 2 + 4, f"no bundle ({status})", "start",
                              fill=MUTED, extra=" font-style='italic'"))
    body.append(_text((left + right) / 2, height - 10, f"bundle size ({unit})", "middle",
                      FONT + 1))
    return _svg(width, height, body, "bundle size per cell")
