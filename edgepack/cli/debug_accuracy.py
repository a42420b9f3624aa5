from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edgepack.cli.common import stdout

NAME = "debug-accuracy"


def command(
    model: Annotated[Path, typer.Argument(help="The model file (.onnx).")],
    data: Annotated[Path | None, typer.Option(help="Calibration/evaluation data (.npz/.npy).")
                    ] = None,
    calib: Annotated[Path | None, typer.Option(help="Calibration data (overrides --data).")
                     ] = None,
    input_shape: Annotated[list[str] | None, typer.Option(
        "--input-shape", help="Fix a dynamic input: NAME=1,3,224,224 (repeatable).")] = None,
    fix_input: Annotated[list[str] | None, typer.Option(
        "--fix-input", help="Freeze an input: NAME=VALUE (repeatable).")] = None,
    calibration: Annotated[str, typer.Option(
        help="Calibration method: minmax, entropy or percentile.")] = "minmax",
    top: Annotated[int, typer.Option(help="How many tensors to list.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Rank the tensors whose int8 quantization costs most accuracy (static QDQ, per-channel
    error of each quantized activation on the calibration samples), and show the int8
    model's end-to-end numbers: the tensors to leave in float first."""
    from rich.markup import escape
    from rich.table import Table

    from edgepack.options import parse_fixed_inputs, parse_input_shapes
    from edgepack.pipeline.debug import rank_int8

    if top < 1:
        from edgepack.errors import UsageError

        raise UsageError(f"--top: {top} is out of range; it must be an integer >= 1")
    result = rank_int8(model, data=data, calib=calib,
                       input_shapes=parse_input_shapes(input_shape),
                       fixed_inputs=parse_fixed_inputs(fix_input), method=calibration)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    stdout.print(f"int8 (every op, static QDQ) on {result['samples']} calibration samples: "
                 f"{escape(result['end_to_end'])}", highlight=False)
    table = Table("rank", "tensor", "produced by", "op", "error", "range")
    for i, t in enumerate(result["ranking"][:top], 1):
        table.add_row(str(i), escape(t["tensor"]), escape(t["node"]), t["op"],
                      f"{t['error']:.4f}", f"[{t['range'][0]:.3g}, {t['range'][1]:.3g}]")
    stdout.print(table)
    stdout.print("error: mean over channels of the relative RMS error the tensor's int8 "
                 "quantization adds. `edgepack build --precision int8` leaves the top ones in "
                 "float, one group at a time, until the budget holds.", highlight=False)
