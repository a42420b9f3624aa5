"""Compare two builds' report.json per cell: latency, accuracy, size, memory and status.

Latency is noisy, so a cell's latency regresses only when the new p50 exceeds the old by more
than the relative threshold *and* by more than the noise either measurement showed (the spread
of the p50s of its benchmark processes with ``--bench-rounds``, else p90 over p50 within one
process): a timing whose own rounds vary by 15% cannot prove a 12% change.
Latencies measured on different machines (another CPU, another CPU count, or a board against
the build host) are shown but never gated: the comparison says so instead of pretending.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgepack.report.model import Cell, Report

MIN_RUNS = 10  # fewer timed runs than this: latency is shown, not gated


@dataclass
class Delta:
    cell: str
    metric: str
    old: float | str | None
    new: float | str | None
    change: str  # e.g. "+21.3%", "-0.0004"
    regression: bool = False
    note: str = ""


@dataclass
class Comparison:
    old: str
    new: str
    deltas: list[Delta] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    thresholds: dict = field(default_factory=dict)

    @property
    def regressions(self) -> list[Delta]:
        return [d for d in self.deltas if d.regression]

    def to_dict(self) -> dict:
        return {**asdict(self), "regressions": len(self.regressions)}

    def to_markdown(self) -> str:
        lines = ["# edgepack report compare", "", f"- old: `{self.old}`",
                 f"- new: `{self.new}`",
                 "- thresholds: " + ", ".join(f"{k} {v:g}" for k, v in self.thresholds.items())]
        lines += [f"- {n}" for n in self.notes]
        lines += ["", "| cell | metric | old | new | change | verdict |",
                  "|---|---|---|---|---|---|"]
        for d in self.deltas:
            verdict = "**REGRESSION**" if d.regression else "ok"
            if d.note:
                verdict += f" ({d.note})"
            lines.append(f"| {d.cell} | {d.metric} | {_fmt(d.old)} | {_fmt(d.new)} | "
                         f"{d.change} | {verdict} |")
        n = len(self.regressions)
        lines += ["", f"**{n} regression(s)**" if n else "No regression."]
        return "\n".join(lines) + "\n"


def _fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.5g}" if isinstance(value, float) else str(value)


def _rel(old: float, new: float) -> str:
    return f"{(new / old - 1) * 100:+.1f}%" if old else "-"


def _min_accuracy(cell: Cell) -> tuple[float | None, float | None]:
    """The lowest cosine (or integer match) over outputs, and the top-1 if labelled."""
    outputs = (cell.accuracy or {}).get("outputs", {})
    values = [m.get("cosine", m.get("match")) for m in outputs.values()]
    values = [v for v in values if isinstance(v, int | float)]
    top1 = next((m["top1"] for m in outputs.values() if isinstance(m.get("top1"), float)), None)
    return (min(values) if values else None), top1


def same_machine(old: Report, new: Report) -> str | None:
    """None if both reports' latencies come from the same kind of machine, else why not."""
    keys = ("cpu", "cpus", "machine")
    a, b = ({k: r.host.get(k) for k in keys} for r in (old, new))
    if a != b:
        diff = ", ".join(f"{k} {a[k]} → {b[k]}" for k in keys if a[k] != b[k])
        return f"the builds ran on different hosts ({diff})"
    return None


def compare(old_path: Path, new_path: Path, latency_threshold: float = 0.10,
            accuracy_threshold: float = 0.001, top1_threshold: float = 0.5,
            size_threshold: float = 0.05, memory_threshold: float = 0.10,
            cross_host: bool = False) -> Comparison:
    from edgepack.pipeline.merge import read_report

    old_file, new_file = (_report_file(p) for p in (old_path, new_path))
    old, new = read_report(old_file), read_report(new_file)
    out = Comparison(str(old_file), str(new_file), thresholds={
        "latency": latency_threshold, "cosine": accuracy_threshold, "top-1 points":
        top1_threshold, "size": size_threshold, "memory": memory_threshold})
    if old.source.get("sha256") != new.source.get("sha256"):
        out.notes.append(f"the model file changed (sha256 {old.source.get('sha256', '?')[:12]}… "
                         f"→ {new.source.get('sha256', '?')[:12]}…)")
    other_host = same_machine(old, new)
    gate_latency = other_host is None or cross_host
    if other_host:
        out.notes.append(f"{other_host}: latency and memory are shown but "
                         + ("gated anyway (--cross-host)" if cross_host else
                            "not gated (pass --cross-host to gate them)"))
    new_cells = {c.key: c for c in new.cells}
    for a in old.cells:
        b = new_cells.pop(a.key, None)
        if b is None:
            if a.status == "ok":
                out.deltas.append(Delta(a.key, "status", a.status, "missing", "gone",
                                        regression=True, note="the new build has no such cell"))
            continue
        if a.status != b.status:
            out.deltas.append(Delta(a.key, "status", a.status, b.status, f"{a.status} → "
                                    f"{b.status}", regression=a.status == "ok",
                                    note=b.reason or ""))
        if a.status != "ok" or b.status != "ok":
            continue
        out.deltas += _latency(a, b, latency_threshold, gate_latency)
        out.deltas += _accuracy(a, b, accuracy_threshold, top1_threshold)
        for metric, x, y, thr, gated in (
                ("size bytes", a.size, b.size, size_threshold, True),
                ("peak RSS bytes", (a.memory or {}).get("peak_rss_bytes"),
                 (b.memory or {}).get("peak_rss_bytes"), memory_threshold, gate_latency)):
            if x and y:
                worse = y > x * (1 + thr)
                out.deltas.append(Delta(a.key, metric, float(x), float(y), _rel(x, y),
                                        regression=worse and gated,
                                        note="not gated: other host" if worse and not gated
                                        else ""))
    for b in new_cells.values():
        out.deltas.append(Delta(b.key, "status", None, b.status, "new cell"))
    return out


def _report_file(path: Path) -> Path:
    """A report.json, or the one inside a model folder or an output folder."""
    from edgepack.errors import UsageError
    from edgepack.pipeline.merge import model_folders

    if not path.is_dir():
        return path
    found = model_folders(path)
    if len(found) > 1:
        raise UsageError(f"{path} holds the reports of several models "
                         f"({', '.join(f.name for f in found)}); pass one model's folder")
    return found[0] / "report.json"


def _latency(a: Cell, b: Cell, threshold: float, gated: bool) -> list[Delta]:
    la, lb = a.latency or {}, b.latency or {}
    if "p50" not in la or "p50" not in lb:
        return []
    note, gate = "", gated
    if la.get("measured_on") != lb.get("measured_on"):
        note, gate = (f"not gated: measured on {la.get('measured_on')} then "
                      f"{lb.get('measured_on')}"), False
    elif min(la.get("runs", 0), lb.get("runs", 0)) < MIN_RUNS:
        note, gate = f"not gated: fewer than {MIN_RUNS} timed runs", False
    old, new = float(la["p50"]), float(lb["p50"])
    noise = max(_noise(la), _noise(lb))
    change = new / old - 1 if old else 0.0
    worse = change > threshold and change > noise
    if worse and not gated and not note:
        note = "not gated: other host"
    elif not note:
        note = f"noise ±{noise:.0%}"
    return [Delta(a.key, "p50 ms", old, new, _rel(old, new), regression=worse and gate,
                  note=note)]


def _noise(latency: dict) -> float:
    """How much this measurement's p50 may move on its own, relative: the spread of the p50s
    of its benchmark processes (--bench-rounds) when there were several, else of the runs
    within one process (p90 over p50)."""
    p50 = float(latency["p50"])
    rounds = latency.get("rounds_p50_ms") or []
    if len(rounds) > 1 and p50:
        return (max(rounds) - min(rounds)) / p50
    return (float(latency.get("p90", p50)) - p50) / p50 if p50 else 0.0


def _accuracy(a: Cell, b: Cell, cos_threshold: float, top1_threshold: float) -> list[Delta]:
    (ca, ta), (cb, tb) = _min_accuracy(a), _min_accuracy(b)
    out = []
    if ca is not None and cb is not None:
        out.append(Delta(a.key, "min cosine", ca, cb, f"{cb - ca:+.2g}",
                         regression=ca - cb > cos_threshold))
    if ta is not None and tb is not None:
        out.append(Delta(a.key, "top-1 %", ta * 100, tb * 100, f"{(tb - ta) * 100:+.2f}",
                         regression=(ta - tb) * 100 > top1_threshold))
    return out
