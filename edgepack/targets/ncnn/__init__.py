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
* int8: the fp32 model quantized here (``int8.py``: what ncnn's ``ncnn2table`` and
  ``ncnn2int8`` do, which no wheel ships): per-channel weight scales, per-tensor input scales
  calibrated on the calibration samples through the ncnn wheel; tried whole, then with the
  thresholds of least error, then with the layers int8 harms most left in fp32, until a
  bundle meets the int8 budget. ncnn runs its quantized layers in int8 (its dot-product
  kernels where the CPU has them) and the rest in fp32.
* int8-dynamic: declined (ncnn quantizes activations with calibrated scales only).

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgepack import procs
from edgepack.data import Dataset
from edgepack.profiles import DeviceProfile
from edgepack.settings import Precision
from edgepack.targets.base import LowerContext, Lowered, Strategy, Target
from edgepack.targets.ncnn.crash import bisect, crashed, named, predict

MIN_GLIBC = "2.28"  # the ncnn wheels are manylinux_2_28 (x86_64 and aarch64)
NO_DYNAMIC = ("ncnn quantizes activations with scales calibrated ahead of time, not at run "
              "time: its int8 is --precision int8 (static, with --data or --calib)")
# int8 strategies: (threshold rule: None = from --calibration, share of the quantizable
# layers left in fp32, those int8 harms most)
INT8_TRIES = ((None, 0.0), ("least-error", 0.0), ("least-error", 0.25),
              ("least-error", 0.5))
CALIBRATION_RULES = {"minmax": "max", "entropy": "kl", "percentile": "percentile"}
INT8_SAMPLES = 256  # calibration samples used at most
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


@dataclass(frozen=True)
class NcnnStrategy(Strategy):
    """int8: the rule for the input thresholds (None: from --calibration; int8.RULES) and the
    share of quantizable layers left in fp32 (``keep_share``, those int8 harms most)."""

    rule: str | None = None


class NcnnTarget(Target):
    name = "ncnn"
    packages = ("ncnn", "pnnx")
    module = "ncnn"
    extra = "ncnn"
    runtime = "ncnn"
    backend = "edgepack.device.backends.ncnn"
    precisions = (Precision.FP32, Precision.FP16, Precision.INT8)
    strategy_type = NcnnStrategy

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
        return NO_DYNAMIC if precision == Precision.INT8_DYNAMIC else None

    def check_profile(self, profile: DeviceProfile) -> str | None:
        if not profile.glibc_at_least(MIN_GLIBC):
            return (f"ncnn's wheels need glibc >= {MIN_GLIBC}, but profile '{profile.name}' "
                    f"has glibc {profile.glibc} ({profile.os})")
        return super().check_profile(profile)

    def strategies(self, precision: str, profile: DeviceProfile) -> list[Strategy]:
        version = pnnx_version() if self.available() else "?"
        if precision == Precision.INT8:
            return [NcnnStrategy(f"pnnx-{version} int8" + (f" {rule}" if rule else "")
                                 + (f", {share:.0%} of layers in fp32" if share else ""),
                                 forms=PNNX_FORMS, rule=rule, keep_share=share,
                                 kernels="ncnn int8")
                    for rule, share in INT8_TRIES]
        return [NcnnStrategy(f"pnnx-{version} torchscript", source_formats=("torch",)),
                NcnnStrategy(f"pnnx-{version}", forms=PNNX_FORMS)]

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
            ins, outs = bind(inputs, outputs, batch_axes(work / "model_ncnn.py"),
                             retyped_inputs(model))
            notes = [f"converted by pnnx {pnnx_version()} from {what} "
                     f"({'fp16' if fp16 else 'fp32'} weights)", _precision_note(fp16, profile)]
            options = FP16 if fp16 else FP32
            if precision == Precision.INT8:
                notes = [notes[0], _to_int8(work, ins, calib, ctx)]
                options = {**FP32, "use_int8_inference": True}
            for name in ("model.ncnn.param", "model.ncnn.bin"):
                shutil.copyfile(work / name, out_dir / name)
        return Lowered("model.ncnn.param", ["model.ncnn.param", "model.ncnn.bin"], ins, outs,
                       runtime_options={"ncnn_options": options}, notes=notes, stats=stats)


def _to_int8(work: Path, ins: list[dict], calib: Dataset | None, ctx: LowerContext) -> str:
    """Quantize pnnx's fp32 model in ``work`` in place; a note saying what was done."""
    from edgepack.targets.ncnn import int8

    if calib is None or not calib.samples:
        raise RuntimeError("ncnn int8 needs calibration samples (--data or --calib)")
    param, weights = work / "model.ncnn.param", work / "model.ncnn.bin"
    try:
        layers = int8.read_param(param.read_text())
        int8.read_weights(layers, weights.read_bytes())
    except int8.NotQuantizable as e:
        raise RuntimeError(f"ncnn int8: {e}") from None
    layers_q = int8.quantizable(layers)
    if not layers_q:
        raise RuntimeError("ncnn int8: the model has no convolution, inner-product or linear "
                           "(Gemm) layer to quantize")
    calibrated = [la for la in layers_q if la.type in int8.QUANTIZABLE]
    count = min(calib.samples, INT8_SAMPLES)
    values = int8.blob_samples(param, weights, {la.bottoms[0] for la in calibrated},
                               lambda ex, sample: _feed(ex, ins, sample),
                               (calib.feed(i) for i in range(count))) if calibrated else {}
    strategy = ctx.strategy
    rule = strategy.rule or CALIBRATION_RULES.get(ctx.calibration_method, "max")
    limits = int8.thresholds(values, rule)
    keep: set[str] = set()
    if strategy.keep_share:
        ranked = sorted(layers_q, reverse=True, key=lambda la: int8.sensitivity(
            la, values.get(la.bottoms[0]), limits.get(la.bottoms[0])))
        keep = {la.name for la in ranked[:max(1, round(len(ranked) * strategy.keep_share))]}
    text, data, done = int8.write_int8(layers, {b: 127.0 / t for b, t in limits.items()}, keep)
    param.write_text(text)
    weights.write_bytes(data)
    left = sorted(keep)
    gemms = sum(1 for la in layers_q if la.type == "Gemm" and la.name in done)
    return (f"int8: {len(done)} of {len(layers_q)} convolution, inner-product and linear "
            "layers quantized (per-channel weight scales"
            + (f", per-tensor input scales from {count} calibration samples, thresholds: "
               f"{rule}" if calibrated else "")
            + (f"; {gemms} linear (Gemm) layer(s) with one weight scale each, their inputs "
               "quantized at run time" if gemms else "") + ")"
            + (f"; left in fp32 as the layers int8 harms most: {', '.join(left[:8])}"
               + (", ..." if len(left) > 8 else "") if left else ""))


def _feed(ex, ins: list[dict], feed: dict) -> None:
    """Put one sample into an ncnn extractor as the bundle's backend does (ncnn's own copy of
    each array: its in-place layers must not write into, or crash on, numpy's memory)."""
    import ncnn

    for t in ins:
        if t.get("runtime_name"):
            arr = np.ascontiguousarray(np.reshape(feed[t["name"]], t["runtime_shape"]),
                                       dtype=t["runtime_dtype"])
            ex.input(t["runtime_name"], ncnn.Mat(arr).clone())


# graph rewrites (edgepack.stages.rewrites) into the forms pnnx lowers to ncnn layers, each
# applied where it changes the model: pnnx passes other spellings of the same ops through
# unconverted, converts some wrong, and crashes on a few (the rewrites' docstrings say which);
# opset 17 and sums as means last: pnnx reads reduction axes only as an attribute (opset <= 17;
# ReduceSum takes them as an input from opset 13), and drops them given as an input, so that
# the reduction silently reduces nothing
PNNX_FORMS = ("fold-ifs", "explicit-pads", "booleans-as-floats", "gather-as-slices",
              "crop-flip-slices", "embedding-lookups", "float-inputs", "constant-broadcasts",
              "subgraph-constants", "opset-17", "sums-as-means")


def _for_pnnx(model: Path, dest: Path) -> str:
    """Copy ``model`` to ``dest`` for pnnx (which writes its outputs beside its input)."""
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
    cmd = [pnnx_executable(), source.name, f"inputshape={_shape_arg(inputs)}",
           f"fp16={int(fp16)}"]
    done = procs.run(cmd, what=f"pnnx {pnnx_version()}", timeout=ctx.timeout, cwd=source.parent,
                     log=Path(ctx.log) if ctx.log else None, capture=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    stats = {"converter": f"pnnx {pnnx_version()}", "convert_seconds": round(done.seconds, 2),
             "converter_exit_code": done.returncode, "converter_peak_rss_bytes": peak}
    written = (source.parent / "model.ncnn.param").is_file()
    if crashed(done) and source.suffix == ".onnx":
        raise RuntimeError(crash_reason(source, inputs, done, ctx))
    if not done.ok or not written:
        raise RuntimeError(failure(done.output, source) or
                           f"pnnx wrote no ncnn model ({done.reason or 'exit 0'}): "
                           f"{done.last_line() or 'no output'}")
    return stats


def crash_reason(source: Path, inputs: list[dict], done: procs.Finished,
                 ctx: LowerContext) -> str:
    """One line: pnnx crashed, on which node, and why where that is known."""
    import onnx

    model = onnx.load(str(source))
    how = done.reason or f"exit {done.returncode}"
    cause = predict(model, inputs)
    if cause:
        return f"pnnx {pnnx_version()} crashed ({how}): {cause}"
    shapes = _shape_arg(inputs)

    def run(path: Path) -> procs.Finished:
        return procs.run([pnnx_executable(), path.name, f"inputshape={shapes}", "fp16=0"],
                         what="pnnx on part of the graph", timeout=ctx.timeout, cwd=path.parent,
                         capture=True)

    node, runs = bisect(model, run)
    if node is None:
        return (f"pnnx {pnnx_version()} crashed ({how}); bisecting the graph ({runs} pnnx runs) "
                "did not isolate a node")
    return (f"pnnx {pnnx_version()} crashed ({how}) on {named(node)} (found by bisecting the "
            f"graph in {runs} pnnx runs)")


def _shape_arg(inputs: list[dict]) -> str:
    """pnnx's inputshape argument: [1,3,224,224]f32,[1,16]i64"""
    return ",".join("[" + ",".join(str(d) for d in i["shape"]) + "]"
                    + PNNX_TYPES.get(i["dtype"], "") for i in inputs)


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
    """Layers in pnnx's output that ncnn does not have, with the ONNX nodes they come from;
    None when ncnn has every layer. pnnx passes an op it cannot lower through under its own
    name, as ``<Type>_<n>`` (the layers it lowers are named in lower case): such a layer is
    unconverted even where its type is also the name of an ncnn layer (``Slice``, ``Cast``,
    ``Gemm``...), which ncnn would load and then run wrong or crash on."""
    import ncnn

    found: dict[str, list[str]] = {}
    for line in param.read_text().splitlines()[2:]:
        parts = line.split()
        if len(parts) >= 2 and (ncnn.layer_to_index(parts[0]) < 0 or
                                re.fullmatch(re.escape(parts[0]) + r"_\d+", parts[1])):
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


def retyped_inputs(model: Path) -> dict[str, str]:
    """Inputs a rewrite declared float in the model given to pnnx (``float-inputs``): name ->
    the dtype callers feed (the model's metadata says)."""
    import json

    import onnx

    from edgepack.stages.rewrites.booleans import RETYPED

    if model.suffix != ".onnx":
        return {}
    props = {p.key: p.value for p in onnx.load(str(model), load_external_data=False)
             .metadata_props}
    return json.loads(props[RETYPED]) if RETYPED in props else {}


def bind(inputs: list[dict], outputs: list[dict], axes: dict[str, int | None],
         retyped: dict[str, str] | None = None) -> tuple[list[dict], list[dict]]:
    """Manifest entries: the ONNX tensors users feed, each with its ncnn blob (pnnx numbers
    them in the ONNX graph's order) and, for inputs, the shape and dtype ncnn takes."""
    outs = [{**o, "runtime_name": f"out{i}"} for i, o in enumerate(outputs)]
    missing = [o["name"] for o in outs if o["runtime_name"] not in axes]
    if missing:
        raise RuntimeError(f"pnnx's model has no blob for output(s) {', '.join(missing)}")
    # an input a rewrite declared float: callers feed its own type, ncnn takes floats
    own = [{**s, "dtype": (retyped or {}).get(s["name"], s["dtype"])} for s in inputs]
    ins = []
    for i, spec in enumerate(inputs):
        name = f"in{i}"
        if name not in axes:  # pnnx dropped an input the graph does not use
            ins.append({**own[i], "runtime_name": None})
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
        spec = own[i]
        ins.append({**spec, "runtime_name": name, "runtime_shape": shape,
                    "runtime_dtype": dtype, "batch_axis": axis})
    return ins, outs


TARGET = NcnnTarget()
