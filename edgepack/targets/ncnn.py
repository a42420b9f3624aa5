"""ncnn target: pnnx writes ncnn's ``model.ncnn.param`` + ``model.ncnn.bin``; the ``ncnn`` wheel
runs them on the device.

Strategies, tried in order and kept only when the file verifies: pnnx on the user's PyTorch
module traced to TorchScript (a native path: no ONNX hop), then pnnx on each prepared ONNX
model. pnnx (the ``pnnx`` wheel's self-contained executable, run directly so that its Python
wrapper's torch import is not paid) runs in a child process with a timeout.

* fp32: fp32 weights (pnnx ``fp16=0``); the bundle pins ncnn's fp16/bf16 storage, packing
  and arithmetic off. ncnn turns them on by default, and where the CPU has them (fp16
  arithmetic on Cortex-A76/A55, fp16 weights of some layers with x86's F16C) its outputs
  would depend on the CPU that checks them.
* fp16: fp16 weights (pnnx's default) and fp16 storage, packing and arithmetic on, which is
  what ncnn does by default. On a CPU without fp16 arithmetic (``asimdhp``: Cortex-A72, A53)
  ncnn still keeps activations in fp16 between layers and converts them to fp32 for every
  computation; on x86 it computes in fp32. The backend reports what ran.
* int8, int8-dynamic: declined. ncnn quantizes with ``ncnn2table`` and ``ncnn2int8``, C++
  programs built from ncnn's source; neither the ``ncnn`` nor the ``pnnx`` wheel ships them.

Layout: ncnn's ``Mat`` has no batch axis. pnnx decides per tensor where the batch axis is (or
that there is none) and says so only in the Python script it writes beside the model
(``model_ncnn.py``); the manifest records it as each input's ``runtime_shape``, and the
backend reshapes, so users feed the ONNX names, shapes and layouts.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import resource
import shutil
import tempfile
from pathlib import Path

import numpy as np

from edgepack import procs
from edgepack.data import Dataset
from edgepack.profiles import DeviceProfile
from edgepack.settings import Precision
from edgepack.targets.base import LowerContext, Lowered, Strategy, Target

MIN_GLIBC = "2.28"  # the ncnn wheels are manylinux_2_28 (x86_64 and aarch64)
NO_INT8 = ("ncnn's int8 quantizer (ncnn2table + ncnn2int8) is a C++ tool built from ncnn's "
           "source: neither the ncnn nor the pnnx package ships it, so no int8 bundle")
FP32 = {"use_fp16_packed": False, "use_fp16_storage": False, "use_fp16_arithmetic": False,
        "use_bf16_storage": False}
FP16 = {"use_fp16_packed": True, "use_fp16_storage": True, "use_fp16_arithmetic": True,
        "use_bf16_storage": False}
NO_BATCH = 233  # pnnx's "this tensor has no batch axis"
PNNX_TYPES = {"float32": "f32", "float16": "f16", "float64": "f64", "int64": "i64",
              "int32": "i32", "int16": "i16", "int8": "i8", "uint8": "u8"}


def pnnx_version() -> str:
    return importlib.metadata.version("pnnx")


def pnnx_executable() -> Path:
    """The converter inside the pnnx package (found without importing it: its wrapper imports
    torch)."""
    return Path(importlib.util.find_spec("pnnx").origin).parent / "pnnx"


class NcnnTarget(Target):
    name = "ncnn"
    packages = ("ncnn", "pnnx")
    module = "ncnn"
    extra = "ncnn"
    runtime = "ncnn"
    backend = "edgepack.device.backends.ncnn"
    precisions = ("fp32", "fp16")

    def available(self) -> bool:
        if not super().available():
            return False
        try:
            return importlib.util.find_spec("pnnx") is not None
        except (ImportError, ValueError):
            return False

    def declines(self, precision: str, profile: DeviceProfile) -> str | None:
        if precision == Precision.INT4_WEIGHTS:
            return ("ncnn has no weight-only int4 format (its quantized models are int8, from "
                    "ncnn2int8), so no int4-weights bundle")
        return NO_INT8 if precision.startswith("int8") else None

    def check_profile(self, profile: DeviceProfile) -> str | None:
        if not profile.glibc_at_least(MIN_GLIBC):
            return (f"ncnn's wheels need glibc >= {MIN_GLIBC}, but profile '{profile.name}' "
                    f"has glibc {profile.glibc} ({profile.os})")
        return super().check_profile(profile)

    def strategies(self, precision: str, profile: DeviceProfile) -> list[Strategy]:
        version = pnnx_version() if self.available() else "?"
        return [Strategy(f"pnnx-{version} torchscript", source_formats=("torch",)),
                Strategy(f"pnnx-{version}")]

    def lower(self, model: Path, precision: str, profile: DeviceProfile,
              calib: Dataset | None, out_dir: Path, ctx: LowerContext) -> Lowered:
        from edgepack.importers.onnx import io_specs

        inputs, outputs = io_specs(model)
        outputs = static_outputs(model, inputs, outputs)
        fp16 = precision == Precision.FP16
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            if ctx.source:
                source, what = _torchscript(ctx.source, work), "the traced TorchScript module"
            else:
                source, what = work / "model.onnx", "the prepared ONNX model"
                what += _for_pnnx(model, source)
            stats = _convert(source, inputs, fp16, ctx)
            problem = unsupported_layers(work / "model.ncnn.param", model)
            if problem:
                raise RuntimeError(problem)
            ins, outs = bind(inputs, outputs, batch_axes(work / "model_ncnn.py"))
            for name in ("model.ncnn.param", "model.ncnn.bin"):
                shutil.copyfile(work / name, out_dir / name)
        notes = [f"converted by pnnx {pnnx_version()} from {what} "
                 f"({'fp16' if fp16 else 'fp32'} weights)", _precision_note(fp16, profile)]
        return Lowered("model.ncnn.param", ["model.ncnn.param", "model.ncnn.bin"], ins, outs,
                       runtime_options={"ncnn_options": FP16 if fp16 else FP32}, notes=notes,
                       stats=stats)


PNNX_OPSET = 17  # pnnx reads Reduce* axes only as the attribute (opset <= 17): as an input
#                (opset 18) they are dropped and the reduction silently reduces nothing


def _for_pnnx(model: Path, dest: Path) -> str:
    """Write ``model`` to ``dest`` as pnnx reads it right: a default-domain opset above
    PNNX_OPSET converted down to it (ONNX's version converter) where that succeeds, else
    as it is. Returns a note for the conversion, or nothing."""
    import onnx

    from edgepack.stages.graph import default_opset

    proto = onnx.load(str(model))
    opset = default_opset(proto) or 0
    if opset > PNNX_OPSET:
        try:
            from onnx import version_converter

            onnx.save(version_converter.convert_version(proto, PNNX_OPSET), str(dest))
            return f", converted from opset {opset} to {PNNX_OPSET} for pnnx"
        except Exception:  # noqa: BLE001 - any failure: pnnx gets the model as it is
            pass
    shutil.copyfile(model, dest)
    return ""


def static_outputs(model: Path, inputs: list[dict], outputs: list[dict]) -> list[dict]:
    """The outputs with the shapes the model produces where it declares symbolic ones (the
    minimally prepared model keeps its source's declarations): the backend reshapes ncnn's
    blobs to them."""
    if all(isinstance(d, int) for o in outputs for d in o["shape"]):
        return outputs
    from edgepack.stages.simplify import run_onnx

    feed = {i["name"]: np.zeros(i["shape"], i["dtype"]) for i in inputs}
    produced = run_onnx(model, [feed])
    return [{**o, "shape": list(produced[o["name"]][0].shape)} for o in outputs]


def _precision_note(fp16: bool, profile: DeviceProfile) -> str:
    """What ncnn will compute in on the profile's CPU."""
    if not fp16:
        return "fp16/bf16 storage and arithmetic pinned off (ncnn's default turns them on)"
    if profile.arch != "aarch64":
        return ("fp16 options on; on x86 ncnn computes in fp32 (some layers keep fp16 weights "
                "with F16C)")
    if "asimdhp" in profile.features:
        return f"fp16 storage and arithmetic ({profile.cpu} has asimdhp)"
    return (f"fp16 storage only: {profile.cpu} has no fp16 arithmetic (asimdhp), so ncnn keeps "
            "activations in fp16 and converts them to fp32 for every computation")


def _torchscript(source: dict, work: Path) -> Path:
    """The user's PyTorch module as TorchScript (``work/model.pt``), traced on inputs of the
    source's static shapes; a TorchScript source is saved as it is."""
    import torch

    from edgepack.importers.base import Source
    from edgepack.importers.pytorch import load_module

    src = Source.from_dict(source)
    if src.path.suffix == ".pt2" and src.entry is None:
        module = torch.export.load(str(src.path)).module()
    else:
        module = load_module(src)
    path = work / "model.pt"
    if isinstance(module, torch.jit.ScriptModule):
        module.save(str(path))
        return path
    rng = np.random.default_rng(0)
    example = tuple(torch.from_numpy(rng.standard_normal(i["shape"]).astype(i["dtype"])
                                     if np.dtype(i["dtype"]).kind == "f" else
                                     np.zeros(i["shape"], i["dtype"])) for i in source["inputs"])
    with torch.no_grad():
        torch.jit.trace(module, example, check_trace=False).save(str(path))
    return path


def _convert(source: Path, inputs: list[dict], fp16: bool, ctx: LowerContext) -> dict:
    """Run pnnx on ``source`` (it writes model.ncnn.param/.bin and model_ncnn.py beside it).
    RuntimeError naming the op it failed on, when it wrote no ncnn model."""
    shapes = ",".join("[" + ",".join(str(d) for d in i["shape"]) + "]"
                      + PNNX_TYPES.get(i["dtype"], "") for i in inputs)
    cmd = [pnnx_executable(), source.name, f"inputshape={shapes}", f"fp16={int(fp16)}"]
    done = procs.run(cmd, what=f"pnnx {pnnx_version()}", timeout=ctx.timeout, cwd=source.parent,
                     log=Path(ctx.log) if ctx.log else None, capture=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    stats = {"converter": f"pnnx {pnnx_version()}", "convert_seconds": round(done.seconds, 2),
             "converter_exit_code": done.returncode, "converter_peak_rss_bytes": peak}
    written = (source.parent / "model.ncnn.param").is_file()
    if not done.ok or not written:
        raise RuntimeError(failure(done.output, source) or
                           f"pnnx wrote no ncnn model ({done.reason or 'exit 0'}): "
                           f"{done.last_line() or 'no output'}")
    return stats


ANSI = re.compile(r"\x1b\[[0-9;]*m")
_OP_LINES = (re.compile(r"unexpected op_type (\S+)"),
             re.compile(r"(?:[\w.]+:)?(\w+)\(-?\d+\) is not a registered function/op"),
             re.compile(r"(?:unsupported|not supported)\D*?\b([A-Z]\w+)"))


def failure(log: str, source: Path) -> str | None:
    """The op pnnx failed on, its node and pnnx's own line, from its output (None if the
    output names no op)."""
    lines = [ANSI.sub("", ln).strip() for ln in log.splitlines()]
    for pattern in _OP_LINES:
        for line in lines:
            match = pattern.search(line)
            if match:
                where = _nodes(source, match.group(1))
                detail = next((ln for ln in lines if "error" in ln.lower()), line)
                return f"pnnx cannot convert op {match.group(1)}{where}: {detail[:200]}"
    return None


def unsupported_layers(param: Path, onnx_model: Path) -> str | None:
    """Layers in pnnx's output that ncnn does not have (pnnx passes ops it cannot lower
    through under their own names), with the ONNX nodes they come from; None when ncnn has
    every layer."""
    import ncnn

    found: dict[str, list[str]] = {}
    for line in param.read_text().splitlines()[2:]:
        parts = line.split()
        if len(parts) >= 2 and ncnn.layer_to_index(parts[0]) < 0:
            found.setdefault(parts[0], []).append(parts[1])
    if not found:
        return None
    # ops named as in ONNX first; pnnx's own leftovers (pnnx.Expression, torch.gt) after them
    ops = sorted(found, key=lambda op: ("." in op, op))
    named = [f"{op}{_nodes(onnx_model, op) or ' (pnnx layer ' + repr(found[op][0]) + ')'}"
             for op in ops]
    return (f"ncnn {importlib.metadata.version('ncnn')} has no layer for op "
            f"{'; '.join(named)}: pnnx passed {'it' if len(ops) == 1 else 'them'} through "
            "unconverted")


def _nodes(model: Path, op_type: str) -> str:
    """' (ONNX node 'a')' / ' (ONNX nodes 'a', 'b', ...)' for the nodes of ``op_type`` in an
    ONNX model, or ''."""
    if model.suffix != ".onnx" or not model.is_file():
        return ""
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    names = [n.name or n.output[0] for n in graph.node if n.op_type == op_type]
    if not names:
        return ""
    shown = ", ".join(repr(n) for n in names[:3]) + (", ..." if len(names) > 3 else "")
    return f" (ONNX node{'s' if len(names) > 1 else ''} {shown})"


_INPUT = re.compile(r'ex\.input\("(in\d+)", ncnn\.Mat\(\w+\.numpy\(\), batch_index=(\d+)\)')
_OUTPUT = re.compile(r'ex\.extract\("(out\d+)"\)')


def batch_axes(script: Path) -> dict[str, int | None]:
    """Each ncnn input's batch axis (None: it has none) and each output blob, as pnnx's
    generated script feeds and reads them."""
    text = script.read_text() if script.is_file() else ""
    axes: dict[str, int | None] = {name: None if int(axis) == NO_BATCH else int(axis)
                                   for name, axis in _INPUT.findall(text)}
    axes.update({name: None for name in _OUTPUT.findall(text)})
    return axes


def bind(inputs: list[dict], outputs: list[dict], axes: dict[str, int | None]
         ) -> tuple[list[dict], list[dict]]:
    """Manifest entries: the ONNX tensors users feed, each with its ncnn blob (pnnx numbers
    them in the ONNX graph's order) and, for inputs, the shape and dtype ncnn takes."""
    outs = [{**o, "runtime_name": f"out{i}"} for i, o in enumerate(outputs)]
    missing = [o["name"] for o in outs if o["runtime_name"] not in axes]
    if missing:
        raise RuntimeError(f"pnnx's model has no blob for output(s) {', '.join(missing)}")
    ins = []
    for i, spec in enumerate(inputs):
        name = f"in{i}"
        if name not in axes:  # pnnx dropped an input the graph does not use
            ins.append({**spec, "runtime_name": None})
            continue
        shape, axis = list(spec["shape"]), axes[name]
        if axis is not None:
            if shape[axis] != 1:
                raise RuntimeError(f"ncnn runs one sample per inference, but input "
                                   f"'{spec['name']}' has batch {shape[axis]} (axis {axis}); "
                                   f"fix it with --input-shape")
            del shape[axis]
        if len(shape) > 4:
            raise RuntimeError(f"input '{spec['name']}' {spec['shape']}: ncnn tensors have at "
                               "most 4 dimensions besides the batch")
        dtype = "int32" if np.dtype(spec["dtype"]).kind in "iub" else "float32"
        ins.append({**spec, "runtime_name": name, "runtime_shape": shape,
                    "runtime_dtype": dtype, "batch_axis": axis})
    return ins, outs


TARGET = NcnnTarget()
