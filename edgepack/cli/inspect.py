from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edgepack.cli.common import stdout

NAME = "inspect"


def command(
    model: Annotated[Path, typer.Argument(
        help="The model: .onnx, .tflite, .keras/.h5, a SavedModel folder, a TorchScript .pt, "
        "an ExportedProgram .pt2, or a PyTorch entry point file.py:make_model.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    trust_pickle: Annotated[bool, typer.Option(
        "--trust-pickle", help="Load a pickled PyTorch model (RUNS ARBITRARY CODE).")] = False,
) -> None:
    """Show a model's inputs and outputs (symbolic dims), and for ONNX its opsets, operators
    and parameters; for other formats the importer and what it needs."""
    from edgepack.importers import parse_model

    source = parse_model(model, trust_pickle=trust_pickle)
    if source.format == "onnx":
        _onnx(source.path, as_json)
    else:
        _other(source, as_json)


def _onnx(path: Path, as_json: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    from edgepack.importers.onnx import summarize_onnx

    s = summarize_onnx(path)
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


def _other(source, as_json: bool) -> None:
    import tempfile

    from rich.markup import escape
    from rich.table import Table

    from edgepack.errors import ModelError
    from edgepack.importers import IMPORTERS, get_importer
    from edgepack.pipeline.importing import _call

    importer = get_importer(source.format)
    missing = importer.missing()
    info = {"model": source.display, "format": source.format,
            "importer": IMPORTERS[source.format], "needs": missing}
    if missing is None:
        importer.check(source)
        with tempfile.TemporaryDirectory() as tmp:
            d = _call(source, "describe", Path(tmp), Path(tmp) / "inspect.log", 600)
        needs_shape = [i["name"] for i in d["inputs"] if i["shape"] is None or any(
            s is None or s < 0 for s in i["shape"][1:])]
        info.update(inputs=d["inputs"], outputs=d["outputs"], layout=d["layout"],
                    notes=d["notes"], must_give_shapes=needs_shape)
    if as_json:
        print(json.dumps(info, indent=2))
        return
    stdout.print(f"[bold]{escape(source.display)}[/]: {source.format} model, imported by "
                 f"{info['importer']}", highlight=False)
    if missing:
        raise ModelError(missing)
    table = Table("", "name", "dtype", "shape")
    for i in info["inputs"]:
        shape = "not declared" if i["shape"] is None else str(
            ["?" if s is None or s < 0 else s for s in i["shape"]])
        table.add_row("input", escape(i["name"]), i["dtype"], escape(shape))
    for o in info["outputs"]:
        table.add_row("output", escape(o), "", "")
    stdout.print(table)
    for note in info["notes"]:
        stdout.print(f"- {escape(note)}", highlight=False)
    if info["must_give_shapes"]:
        stdout.print("Build needs: " + " ".join(
            f"--input-shape {n}=..." for n in info["must_give_shapes"])
            + " (a dynamic leading batch dimension alone defaults to 1)", highlight=False)
