"""The rows every rendering of a report shares (terminal table, Markdown, HTML): one row per
cell and one per board it ran on, and the summary lines above them."""

from __future__ import annotations

import math

from edgepack.report.model import Cell, Report, Status
from edgepack.report.records import BoardRun, Latency, Memory
from edgepack.speed import Source

COLUMNS = ("profile", "target", "precision", "status", "top-1", "agreement", "cosine",
           "emulated", "device p50 ms", "speedup", "host p50 ms", "host p90 ms", "cold ms",
           "peak RSS", "size", "reason")
SOURCE_MARK = {"estimate": "est", "board": "board", "host": "host"}


def accuracy_numbers(outputs: dict) -> tuple[str, str, str]:
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
        elif "step_agreement" in m and isinstance(m["step_agreement"], int | float):
            agree = f"{m['step_agreement'] * 100:.2f}% steps"
        elif "map_iou" in m and isinstance(m["map_iou"], int | float):
            agree = f"IoU {m['map_iou']:.3f}"
    # a report read back from JSON holds non-finite numbers as strings ("nan", "inf")
    numbers = [c for c in cosines if isinstance(c, int | float)]
    cosine = f"{min(numbers):.5f}" if numbers else ("nan" if cosines else "")
    return top1, agree, cosine


def _timing(latency: Latency | None, memory: Memory | None) -> tuple[str, str, str, str]:
    """p50, p90, cold start and peak RSS, formatted."""
    if latency is None:
        return "", "", "", f"{memory.peak_rss_bytes / 2**20:.0f} MiB" if memory else ""
    cold = latency.cold_ms
    return (f"{latency.p50:.3f}", f"{latency.p90:.3f}",
            f"{cold:.1f}" if cold is not None else "",
            f"{memory.peak_rss_bytes / 2**20:.0f} MiB" if memory and memory.peak_rss_bytes
            else "")


def table_rows(cells: list[Cell]) -> tuple[tuple[str, ...], list[tuple[str, list[str]]]]:
    """The columns and the (status, values) rows of ``cells``: one row per cell, then one
    per board it ran on (--remote), with the board's own accuracy and latency. Optional
    columns that are empty in every row are left out."""
    rows = []
    for cell in cells:
        rows.append((cell.status, cell_row(cell)))
        rows += [(b.status, board_row(cell, b)) for b in cell.boards]
    keep = [i for i, col in enumerate(COLUMNS)
            if col not in OPTIONAL or any(values[i] for _, values in rows)]
    return (tuple(COLUMNS[i] for i in keep),
            [(status, [values[i] for i in keep]) for status, values in rows])


OPTIONAL = ("emulated", "speedup", "top-1", "agreement", "device p50 ms")


def board_row(cell: Cell, board: BoardRun) -> list[str]:
    """A board's own numbers for a cell's bundle (accuracy gated like the host's)."""
    top1, agree, cosine = accuracy_numbers(board.outputs or {})
    p50, p90, cold, rss = _timing(board.latency, board.memory)
    ident = board.identity or {}
    where = ", ".join(v for v in (ident.get("machine"), ident.get("model")) if v)
    return ["", "", f"↳ on {board.remote}" + (f" ({where})" if where else ""),
            board.status, top1, agree, cosine, "", p50, "", "", p90, cold,
            rss, "", board.reason or ""]


def cell_row(cell: Cell) -> list[str]:
    top1, agree, cosine = accuracy_numbers((cell.accuracy or {}).get("outputs", {}))
    p50, p90, cold, rss = _timing(cell.latency, cell.memory)
    precision = cell.precision + (f" ({cell.variant})" if cell.variant else "")
    precision += " ← auto" if cell.chosen else ""
    measured = (cell.runtime or {}).get("inference_precision")
    if measured:
        precision += f" [{_short_precision(measured)}]"
    return [
        cell.profile, cell.target, precision, cell.status, top1, agree, cosine, _emulated(cell),
        device_p50(cell), _speedup(cell), p50, p90, cold, rss,
        f"{cell.size / 1024:.1f} KiB" if cell.size else "", cell.reason or "",
    ]


def device_p50(cell: Cell) -> str:
    """The estimated device p50, e.g. '≈12.3 (A76)' (never shown as a measurement)."""
    if cell.device is None or not cell.device.ok:
        return ""
    e = cell.device.estimate
    return f"≈{e.p50_ms:.3g} ({e.cpu.replace('Cortex-', '')})"


def _emulated(cell: Cell) -> str:
    """The accuracy measured on the emulated CPU, beside the host's: 'a72 ✓ 1.00000'."""
    e = cell.emulated
    if e is None:
        return ""
    if e.status == "not emulated":
        return "not emulated"
    values = [m.get("cosine", m.get("match")) for m in (e.outputs or {}).values()]
    values = [v for v in values if isinstance(v, float)]
    mark = "ok" if e.status == "ok" else "FAILED"
    cpu = (e.cpu or "").replace("cortex-", "")
    return f"{cpu} {mark} {min(values):.5f}" if values else f"{cpu} {mark}"


def _speedup(cell: Cell) -> str:
    """The speedup over fp32 and its source, e.g. '2.47× est', with the build host's ratio
    beside a device one, e.g. '0.87× est (host 1.82×)': the two disagree where it matters."""
    d = cell.speed
    if d is None or not d.speedup:
        return ""
    text = f"{d.speedup:.2f}× {SOURCE_MARK.get(d.source, '')}".strip()
    host = d.host.speedup if d.host else None
    if d.source != Source.HOST and host:
        text += f" (host {host:.2f}×)"
    return text


def _short_precision(name: str) -> str:
    """A runtime's name for the precision it computes in, shortened: anything naming
    'bfloat16' -> 'bf16' (e.g. "<Type: 'bfloat16'>"), 'float16' -> 'f16', 'float32' -> 'f32';
    other names as they are."""
    for long, short in (("bfloat16", "bf16"), ("float16", "f16"), ("float32", "f32")):
        if long in name:
            return short
    return name


def summary_lines(report: Report) -> list[str]:
    host = report.host
    counts = {s: sum(c.status == s for c in report.cells)
              for s in (Status.OK, Status.FAILED, Status.SKIPPED, Status.DECLINED)}
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
        f"{counts['failed']} failed, {counts['skipped']} skipped"
        + (f", {counts['declined']} declined (accurate, not shown faster than fp32)"
           if counts["declined"] else ""),
        f"Accuracy data: {evaluation.get('kind', '?')} ({evaluation.get('source', '?')}); "
        f"calibration: {calib.get('kind', 'none')} ({calib.get('source', '-')}){held}",
        speed_sources(report),
        *device_ranking(report),
        f"host columns: measured on the build host, not on the device: {host['cpu']} "
        f"({host['machine']}, {host['cpus']} CPUs), {host['os']}, Python {host['python']}. "
        "top-1 shows the bundle (reference in brackets); cosine is the lowest over outputs; "
        "speedup is the fp32 bundle's time over this one's, same profile and target, from "
        "the source it names (est: estimated for the device's CPU; host: timed interleaved "
        "in fresh processes on the build host; board: measured on the board), followed by "
        "the build host's own ratio in brackets where the source is not the host."
        + (" Rows marked ↳ were measured on the named board (--remote): its own accuracy, "
           "latency and memory; its identity is in report.json."
           if any(c.boards for c in report.cells) else "")
        + (" The emulated column is the accuracy measured on the profile's CPU model under "
           "qemu (--emulate; no latency is taken there)."
           if any(c.emulated for c in report.cells) else ""),
    ]


def speed_sources(report: Report) -> str:
    """Where each profile's speed figures come from, in one line."""
    by_profile: dict[str, str] = {}
    for c in report.cells:
        device = c.device
        if device is not None and device.ok:
            e = device.estimate
            by_profile[c.profile] = (
                f"{c.profile}: device p50 estimated for {e.cpu} @ {e.clock_ghz:g} GHz, "
                f"{e.threads} threads, from instructions counted under qemu on its CPU model "
                f"(±{e.uncertainty * 100:.0f}%; an estimate, not a measurement)")
        elif device is not None and device.reason and c.profile not in by_profile:
            by_profile[c.profile] = f"{c.profile}: not estimated ({device.reason})"
    return "Device speed: " + ("; ".join(by_profile.values()) if by_profile else
                               "no device estimates; every speed figure is the build host's")


def device_ranking(report: Report) -> list[str]:
    """Per profile with device estimates, its targets ranked by the estimated p50 of each
    target's fastest shipped bundle, e.g. 'rpi5, targets fastest first by the device estimate:
    A fp16 ≈24 ms, B fp32 ≈34 ms, ...' (only where two or more targets have one)."""
    best: dict[str, dict[str, tuple[float, Cell]]] = {}
    for c in report.cells:
        if c.status != Status.OK or c.device is None or not c.device.ok:
            continue
        p50 = c.device.estimate.p50_ms
        held = best.setdefault(c.profile, {}).get(c.target)
        if held is None or p50 < held[0]:
            best[c.profile][c.target] = (p50, c)
    lines = []
    for profile, by_target in best.items():
        if len(by_target) < 2:
            continue
        ranked = sorted(by_target.values(), key=lambda pc: pc[0])
        lines.append(f"{profile}, targets fastest first by the device estimate: " + ", ".join(
            f"{c.target} {c.precision}{f' ({c.variant})' if c.variant else ''} "
            f"≈{_ms(p50)} ms" for p50, c in ranked))
    return lines


def _ms(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def number(value) -> float | None:
    """``value`` as a finite float, else None (report.json writes inf/nan as strings)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def human_bytes(n: float) -> str:
    if n >= 2**30:
        return f"{n / 2**30:.2f} GiB"
    if n >= 2**20:
        return f"{n / 2**20:.2f} MiB"
    return f"{n / 2**10:.1f} KiB"
