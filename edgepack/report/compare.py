"""Compare two builds' report.json per cell: speed, accuracy, size, memory and status.

Speed is compared on the most trustworthy figure both builds have:

- **instructions** counted on the profile's CPU model (device estimates): they repeat within
  about 1%, on any runner, so a rise of more than ``INSTRUCTION_THRESHOLD`` (5%) is a
  regression;
- **host latency**, only with the noise between benchmark processes known: with
  ``--bench-rounds`` N >= 2 in both builds, the new p50 regresses when the 95% confidence
  interval of the ratio of the rounds' medians lies wholly above 1 + the threshold. One
  benchmark process says nothing of the process-to-process noise (30% and more on a busy
  2-core runner): its latency is shown, not gated, and the comparison says why.

Latencies measured on different machines are shown but not gated. A cell the new build did
not build (a ``--cell`` subset) is "not built", not a regression.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgepack.report.model import Cell, Report, Status, read_report, report_file
from edgepack.speed import T95

MIN_RUNS = 10  # fewer timed runs than this: latency is shown, not gated
INSTRUCTION_THRESHOLD = 0.05  # counts repeat within ~1%: more than 5% more is a regression


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
    old_file, new_file = (report_file(p) for p in (old_path, new_path))
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
            out.deltas.append(Delta(a.key, "status", str(a.status), "not built", "not built",
                                    note="the new build did not build this cell"))
            continue
        if a.status != b.status:
            out.deltas.append(Delta(a.key, "status", str(a.status), str(b.status),
                                    f"{a.status} → {b.status}",
                                    regression=a.status == Status.OK, note=b.reason or ""))
        if a.status != Status.OK or b.status != Status.OK:
            continue
        out.deltas += _board_latency(a, b, latency_threshold)
        out.deltas += _instructions(a, b)
        out.deltas += _latency(a, b, latency_threshold, gate_latency)
        out.deltas += _accuracy(a, b, accuracy_threshold, top1_threshold)
        out.deltas += _resources(a, b, size_threshold, memory_threshold, gate_latency)
    for b in new_cells.values():
        out.deltas.append(Delta(b.key, "status", None, str(b.status), "new cell"))
    return out


def _resources(a: Cell, b: Cell, size_threshold: float, memory_threshold: float,
               gate_memory: bool) -> list[Delta]:
    out = []
    for metric, x, y, thr, gated in (
            ("size KiB", a.size, b.size, size_threshold, True),
            ("peak RSS MiB", a.memory.peak_rss_bytes if a.memory else None,
             b.memory.peak_rss_bytes if b.memory else None, memory_threshold, gate_memory)):
        if x and y:
            unit = 2**10 if metric.startswith("size") else 2**20
            worse = y > x * (1 + thr)
            out.append(Delta(a.key, metric, round(x / unit, 1), round(y / unit, 1), _rel(x, y),
                             regression=worse and gated,
                             note="not gated: other host" if worse and not gated else ""))
    return out


def _instructions(a: Cell, b: Cell) -> list[Delta]:
    """Instructions per inference on the profile's CPU model: gated tightly, on any host."""
    if a.device is None or b.device is None or not (a.device.ok and b.device.ok):
        return []
    ea, eb = a.device.estimate, b.device.estimate
    cpu = ea.cpu
    if eb.cpu != cpu:
        return [Delta(a.key, "instructions", None, None, "-",
                      note=f"not compared: counted on {cpu}, then {eb.cpu}")]
    old, new = float(ea.instructions["total"]), float(eb.instructions["total"])
    worse = new > old * (1 + INSTRUCTION_THRESHOLD)
    return [Delta(a.key, f"instructions ({cpu}, M)", round(old / 1e6, 3), round(new / 1e6, 3),
                  _rel(old, new), regression=worse,
                  note=f"counted under qemu; gated at +{INSTRUCTION_THRESHOLD:.0%} (counts "
                       "repeat within ~1%)"),
            Delta(a.key, f"estimated p50 ms ({cpu})", ea.p50_ms, eb.p50_ms,
                  _rel(ea.p50_ms, eb.p50_ms),
                  note="from the instructions above (not gated separately)")]


def _board_latency(a: Cell, b: Cell, threshold: float) -> list[Delta]:
    """The p50 a board measured, where both builds ran the cell on the same board: the
    device's own figure, the best source there is (gated at the latency threshold; a board
    runs nothing else, so one process's p50 is its figure)."""
    runs = {r.remote: r for r in a.boards if r.status == "ok" and r.latency}
    deltas = []
    for r in b.boards:
        old = runs.get(r.remote)
        if old is None or r.status != "ok" or r.latency is None:
            continue
        x, y = old.latency.p50, r.latency.p50
        same = (old.identity or {}) == (r.identity or {})
        worse = y > x * (1 + threshold)
        deltas.append(Delta(a.key, f"board p50 ms ({r.remote})", x, y, _rel(x, y),
                            regression=worse and same,
                            note="measured on the board" if same else
                            "not gated: the board reports a different identity"))
    return deltas


def _latency(a: Cell, b: Cell, threshold: float, gated: bool) -> list[Delta]:
    """The host p50, gated only when both builds timed several processes."""
    la, lb = a.latency, b.latency
    if la is None or lb is None:
        return []
    old, new = float(la.p50), float(lb.p50)
    ra, rb = list(la.rounds_p50_ms), list(lb.rounds_p50_ms)
    note, gate = "", gated
    if la.measured_on != lb.measured_on:
        note, gate = f"not gated: measured on {la.measured_on} then {lb.measured_on}", False
    elif min(la.runs, lb.runs) < MIN_RUNS:
        note, gate = f"not gated: fewer than {MIN_RUNS} timed runs", False
    elif len(ra) < 2 or len(rb) < 2:
        note, gate = ("not gated: one benchmark process per build cannot show the host's "
                      "process-to-process noise (pass --bench-rounds 3, or compare device "
                      "estimates)"), False
    low, high = ratio_interval(ra, rb) if len(ra) > 1 and len(rb) > 1 else (None, None)
    worse = low is not None and low > 1 + threshold
    if not note:
        note = (f"95% interval of the ratio {low:.2f}–{high:.2f}× over "
                f"{len(ra)} and {len(rb)} processes")
        if worse and not gated:
            note += "; not gated: other host"
    return [Delta(a.key, "host p50 ms", old, new, _rel(old, new), regression=worse and gate,
                  note=note)]


def ratio_interval(old_rounds: list[float], new_rounds: list[float]) -> tuple[float, float]:
    """The 95% confidence interval of new/old from two sets of benchmark processes' p50s
    (Welch's t on the logs: process-to-process noise is roughly multiplicative)."""
    def stats(values: list[float]) -> tuple[float, float, int]:
        logs = [math.log(v) for v in values]
        mean = sum(logs) / len(logs)
        var = sum((x - mean) ** 2 for x in logs) / (len(logs) - 1)
        return mean, var, len(logs)

    (ma, va, na), (mb, vb, nb) = stats(old_rounds), stats(new_rounds)
    se2 = va / na + vb / nb
    df = se2 ** 2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1)) if se2 else 30
    t = T95[min(max(int(df), 1), len(T95)) - 1]
    half = t * math.sqrt(se2)
    return math.exp(mb - ma - half), math.exp(mb - ma + half)


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
