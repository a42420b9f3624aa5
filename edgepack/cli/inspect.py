from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edgepack.cli.common import stdout

NAME = "inspect"


def command(
    model: Annotated[Path, typer.Argument(help="The model file (.onnx).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a model's inputs, outputs, opsets, operators and parameters."""
    from rich.markup import escape
    from rich.table import Table

    from edgepack.importers import detect_format
    from edgepack.importers.onnx import summarize_onnx

    detect_format(model)
    s = summarize_onnx(model)
    if as_json:
        print(json.dumps(s.to_dict(), indent=2))
        return
    stdout.print(f"[bold]{escape(str(s.path))}[/]  {s.size_bytes / 1024:.1f} KiB  "
                 f"sha256 {s.sha256[:16]}…")
    stdout.print(f"IR {s.ir_version}, opsets: "
                 + ", ".join(f"{d} {v}" for d, v in s.opsets.items())
                 + (f", producer: {s.producer}" if s.producer else ""))
    stdout.print(f"Parameters: {s.parameters:,} ({s.parameter_bytes / 1024:.1f} KiB)")
    table = Table("", "name", "dtype", "shape", "layout")
    for kind, specs in (("input", s.inputs), ("output", s.outputs)):
        for t in specs:
            table.add_row(kind, escape(t.name), t.dtype, escape(t.shape_str()), t.layout or "-")
    stdout.print(table)
    stdout.print("Operators: " + ", ".join(f"{op} ×{n}" for op, n in s.op_histogram.items()))
