"""The report as JUnit XML: one test case per cell, which every CI system shows natively.

A failed cell is a ``<failure>`` whose message is the cell's reason (it names the gate that was
missed); a skipped cell is ``<skipped>``; a cell the build did not need to pass (an optional
``--precision auto`` candidate) that failed is reported as skipped with its reason.
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

from edgepack.report.model import Cell, Report, Status


def _seconds(cell: Cell) -> float:
    return round(sum(v for v in cell.timings.values() if isinstance(v, int | float)), 3)


def to_junit(report: Report) -> str:
    name = f"edgepack {report.source.get('file', '?')}"
    suite = ET.Element("testsuite", name=name, timestamp=report.created,
                       hostname=str(report.host.get("hostname", "")))
    failures = skipped = 0
    for cell in report.cells:
        case = ET.SubElement(suite, "testcase", classname=f"{name}.{cell.profile}",
                             name=cell.name, time=str(_seconds(cell)))
        missed = [g for g in cell.gates if not g.ok]
        if cell.status == Status.FAILED and not cell.optional:
            failures += 1
            failure = ET.SubElement(case, "failure", message=cell.reason or "failed",
                                    type="gate" if missed else "build")
            failure.text = "\n".join(
                [cell.reason or "failed"]
                + [f"gate {g.label or g.name}: {g.name} = {g.value:.6g}, limit "
                   f"{g.limit:g} ({g.kind})" for g in missed]
                + ([f"log: {cell.log}"] if cell.log else []))
        elif cell.status != Status.OK:
            skipped += 1
            ET.SubElement(case, "skipped", message=cell.reason or cell.status)
        else:
            lines = [f"{g.name} = {g.value:.6g} ({g.kind} {g.limit:g})" for g in cell.gates]
            if cell.device is not None and cell.device.ok:
                lines.append(cell.device.estimate.label)
            if cell.latency:
                lines.append(f"p50 {cell.latency.p50:.4g} ms ({cell.latency.measured_on})")
            ET.SubElement(case, "system-out").text = "\n".join(lines)
    suite.set("tests", str(len(report.cells)))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suite.set("skipped", str(skipped))
    suites = ET.Element("testsuites", name="edgepack", tests=suite.get("tests"),
                        failures=str(failures), errors="0", skipped=str(skipped))
    suites.append(suite)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") \
        + "\n"
