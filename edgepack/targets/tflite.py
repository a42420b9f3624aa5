"""TFLite / LiteRT target: onnx2tf in an isolated toolchain, verified, never trusted.

Each strategy is (converter version, backend). The pipeline tries them in order and keeps
the first whose file passes verification; every attempt is recorded. onnx2tf writes every
precision in one run, so runs are cached per build (fp32 and fp16 share one run, the int8
precisions another).

onnx2tf turns 4-D NCHW inputs into NHWC and may rename or reorder inputs and outputs. The
manifest keeps the ONNX name, shape and layout users feed, plus each tensor's runtime name,
shape, dtype, transpose and quantization, which ``run.py`` applies.
"""

from __future__ import annotations

import json
import re
import resource
import shutil
import tempfile
from pathlib import Path

import numpy as np

from edgepack import procs
from edgepack.artifact import TensorSpec
from edgepack.data import Dataset
from edgepack.errors import DataError
from edgepack.profiles import DeviceProfile
from edgepack.settings import Precision
from edgepack.targets.base import LowerContext, Lowered, Strategy, Target, TargetOption
from edgepack.toolchains import Toolchain

INSTALL_HINT = "run: edgepack toolchain install tflite"
_SHOWN = ("onnx2tf", "tensorflow", "onnx", "numpy")
TOOLCHAINS = (
    # first: the TensorFlow-free backend, fast where it is right; verification decides
    Toolchain("onnx2tf-2.6.9", "tflite", ((3, 12), (3, 13)), "0.7 GB", "onnx2tf", _SHOWN),
    Toolchain("onnx2tf-1.29.24", "tflite", ((3, 10), (3, 11)), "2.6 GB", "onnx2tf", _SHOWN),
)
FILES = {"fp32": "float32", "fp16": "float16", "int8-dynamic": "dynamic_range_quant",
         "int8": "integer_quant"}
# stops onnx2tf from downloading sample images, which it tries for 3-channel inputs
DOWNLOAD_GUARD = "calibration_image_sample_data_20x128x128x3_float32.npy"


def _backend_of(chain: Toolchain) -> str:
    version = chain.version("onnx2tf") or ""
    return "flatbuffer_direct" if version.startswith("2.") else "tf_converter"


def strategy_name(chain: Toolchain) -> str:
    return f"{chain.name} {_backend_of(chain)}"


class TfliteTarget(Target):
    name = "tflite"
    packages = ("ai-edge-litert",)
    module = "ai_edge_litert"
    extra = "tflite"
    runtime = "tflite"
    backend = "edgepack.device.backends.tflite"
    toolchains = TOOLCHAINS
    options = (
        TargetOption("int8_io", "--int8-io", "tflite int8: integer inputs/outputs (scale/zero "
                     "point in the manifest; run.py applies them)."),
    )

    def strategies(self, precision: str, profile: DeviceProfile) -> list[Strategy]:
        out = []
        for chain in self.toolchains:
            why = None
            if not chain.installed():
                lo = chain.python[0]
                why = (f"not installed ({INSTALL_HINT})" if chain.find_python() else
                       f"needs Python >= {lo[0]}.{lo[1]}, none found")
            out.append(Strategy(strategy_name(chain), why, toolchain=chain.name))
        # recurrent ops are where the converters go wrong most: the same converters on the
        # unrolled equations (tried only for models that have LSTM/GRU/RNN nodes)
        out += [s.with_rewrite("unroll-rnn") for s in list(out)]
        # native paths first: a TFLite source as it is; TensorFlow's own converter (and
        # quantizer) for Keras and SavedModel sources
        native = [Strategy("tf.lite.TFLiteConverter", source_formats=("keras", "saved-model"))]
        if precision == Precision.FP32:
            native.insert(0, Strategy("original .tflite", source_formats=("tflite",)))
        return native + out

    def declines(self, precision: str, profile: DeviceProfile) -> str | None:
        if precision == Precision.INT4_WEIGHTS:
            return ("LiteRT's block-wise int4 comes from ai-edge-quantizer, which edgepack does "
                    "not drive yet (onnx2tf writes no int4): no int4-weights bundle")
        return None

    def lower(self, model: Path, precision: str, profile: DeviceProfile,
              calib: Dataset | None, out_dir: Path, ctx: LowerContext) -> Lowered:
        if ctx.source:
            return _lower_source(model, precision, calib, out_dir, ctx)
        chain = next(c for c in self.toolchains if c.name == ctx.strategy.toolchain)
        int8_io = bool(ctx.options.get("int8_io"))
        quant = precision in (Precision.INT8, Precision.INT8_DYNAMIC)
        if precision == Precision.INT8 and calib is None:
            raise DataError("static int8 needs calibration data (--calib or --data)")
        stem = "model"
        if precision == Precision.INT8 and int8_io:
            stem_file = f"{stem}_full_integer_quant.tflite"
        else:
            stem_file = f"{stem}_{FILES[precision]}.tflite"
        run_dir, stats = _convert(chain, model, calib if quant else None, quant, ctx)
        produced = run_dir / stem_file
        if not produced.is_file():
            why = f" ({stats['reason']})" if stats.get("reason") else ""
            raise RuntimeError(f"{ctx.strategy.name} wrote no {stem_file}{why}; see the cell's "
                               "log")
        shutil.copyfile(produced, out_dir / "model.tflite")
        inputs, outputs, io_notes = describe_io(out_dir / "model.tflite", model)
        notes = [f"converted by {ctx.strategy.name} ({stem_file})", *io_notes]
        if quant and calib is not None and precision == Precision.INT8:
            notes.append(f"int8 calibrated on {calib.samples} samples ({calib.kind}: "
                         f"{calib.source}); {'int8' if int8_io else 'float32'} I/O")
        return Lowered("model.tflite", ["model.tflite"], inputs, outputs, notes=notes,
                       stats=stats)


def _lower_source(model: Path, precision: str, calib: Dataset | None, out_dir: Path,
                  ctx: LowerContext) -> Lowered:
    """A native path: the source .tflite as it is, or TensorFlow's converter on the source."""
    from edgepack.importers.base import Source

    source = Source.from_dict(ctx.source)
    target = out_dir / "model.tflite"
    if source.format == "tflite":
        shutil.copyfile(source.path, target)
        notes = [f"the original {source.path.name}, unchanged"]
    else:
        from edgepack.importers.tf import IMPORTER

        calib_file = None
        if precision == Precision.INT8:
            if calib is None:
                raise DataError("static int8 needs calibration data (--calib or --data)")
            calib_file = out_dir.parent / ".calib_source.npz"
            np.savez(calib_file, **calib.arrays)
        record = IMPORTER.to_tflite(source, [TensorSpec.from_dict(d) for d in
                                             ctx.source["inputs"]], ctx.source["outputs"],
                                    precision, calib_file, target, out_dir.parent, ctx.timeout)
        notes = [f"converted by {record['converter']} from the source model ({precision})"]
    if model.suffix == ".onnx":
        inputs, outputs, io_notes = describe_io(target, model)
    else:  # no ONNX model (its export failed): the source's own I/O
        inputs, outputs, io_notes = describe_source_io(target, ctx.source)
    return Lowered("model.tflite", ["model.tflite"], inputs, outputs, notes=notes + io_notes)


def _mean_std(rank: int) -> tuple[str, str]:
    nest = lambda v: "[" * rank + v + "]" * rank  # noqa: E731
    return nest("0.0"), nest("1.0")


def _convert(chain: Toolchain, model: Path, calib: Dataset | None, quant: bool,
             ctx: LowerContext) -> tuple[Path, dict]:
    """Run onnx2tf once per (strategy, quantized?) per build; later cells reuse its files and
    its outcome (a failed run's reason is reported again, never silently reused)."""
    import onnx

    from edgepack.artifact import sha256_file

    key = f"{chain.name}-{'quant' if quant else 'float'}-{sha256_file(model)[:16]}"
    cache = Path(ctx.cache_dir or tempfile.mkdtemp()) / key
    outcome = cache / "outcome.json"
    if outcome.is_file():
        return cache / "out", {**json.loads(outcome.read_text()), "cached": True}
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    shutil.copyfile(model, cache / "model.onnx")  # onnx2tf rewrites its input in place
    np.save(cache / DOWNLOAD_GUARD, np.zeros((1, 8, 8, 3), np.float32))
    cmd = [str(chain.bin / chain.executable), "-i", "model.onnx", "-o", "out"]
    graph = onnx.load(str(model))
    if _backend_of(chain) == "flatbuffer_direct":
        cmd += ["-tb", "flatbuffer_direct"]
    elif any(n.op_type == "Erf" for n in graph.graph.node):
        cmd += ["-rtpo", "Erf"]  # else a Flex op that no runtime here can run
    if quant and calib is not None:
        cmd.append("-oiqt")
        shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim]
                  for i in graph.graph.input}
        for name, arr in calib.arrays.items():
            if name.startswith("-"):  # an argument of -cind, which argparse takes as an option
                raise RuntimeError(f"input '{name}' starts with '-': onnx2tf would read the "
                                   "name as an option, so it cannot calibrate that input")
            # samples [N, *shape] -> rows [N * shape[0], *shape[1:]], NHWC for images
            data = arr.reshape(-1, *shapes[name][1:]) if shapes.get(name) else arr
            data = data.transpose(0, 2, 3, 1) if data.ndim == 4 else data
            np.save(cache / f"calib_{_safe(name)}.npy", np.ascontiguousarray(data, np.float32))
            mean, std = _mean_std(data.ndim)
            cmd += ["-cind", name, f"calib_{_safe(name)}.npy", mean, std]
    elif quant:
        cmd.append("-odrqt")
    done = procs.run(cmd, what=strategy_name(chain), timeout=ctx.timeout, cwd=cache,
                     env=chain.env(), log=Path(ctx.log) if ctx.log else cache / "onnx2tf.log",
                     capture=True)
    # includes the lowering process's RSS at fork as a floor; the converter's is far above it
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    stats = {"converter": strategy_name(chain), "convert_seconds": round(done.seconds, 2),
             "converter_exit_code": done.returncode, "converter_peak_rss_bytes": peak,
             "reason": _failure(done.output) or done.reason}
    outcome.write_text(json.dumps(stats))
    return cache / "out", {**stats, "cached": False}


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _failure(log: str) -> str | None:
    """The ONNX op onnx2tf failed on, and its error line, from its log (None if none)."""
    lines = [ANSI.sub("", ln) for ln in log.splitlines()]
    errors = [i for i, ln in enumerate(lines) if ln.startswith("ERROR:")]
    if not errors:
        return None
    first = errors[0]
    op = next((ln for ln in reversed(lines[:first]) if "onnx_op_type:" in ln), "")
    match = re.search(r"onnx_op_type:\s*(\S+)\s+onnx_op_name:\s*(\S*)", op)
    error = next((ln.strip() for ln in lines[first:] if re.match(r"^\w*(Error|Exception)\b",
                                                                 ln.strip())), "")
    where = f"at {match.group(1)} node '{match.group(2)}'" if match else "during conversion"
    return f"onnx2tf failed {where}" + (f": {error[:200]}" if error else "")


def _safe(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_.-]", "_", name)


def _norm(name: str) -> str:
    name = name.lower().removeprefix("serving_default_").split(":")[0]
    return re.sub(r"[^0-9a-z]", "", name)


def _perm(onnx_shape: list, runtime_shape: list) -> list[int] | None:
    """The transpose taking the ONNX layout to the runtime's, None if they are the same."""
    def same(a: list, b: list) -> bool:  # a symbolic dim matches any size
        return len(a) == len(b) and all(not isinstance(x, int) or x == y
                                        for x, y in zip(a, b, strict=True))

    if same(list(onnx_shape), list(runtime_shape)):
        return None
    rank = len(onnx_shape)
    if rank >= 3:
        perm = [0, *range(2, rank), 1]  # channels last
        if same([onnx_shape[i] for i in perm], list(runtime_shape)):
            return perm
    return []  # no known mapping


def bind(specs: list[TensorSpec], details: list[dict]) -> tuple[list[dict], list[str]]:
    """Match the runtime's tensors to the ONNX ones: by name, else by shape, else by order.

    Returns manifest entries (the ONNX name/shape/layout users feed, plus the runtime's
    name, shape, dtype, transpose and quantization) and notes on how each was bound.
    """
    free = list(details)
    entries, notes = [], []
    for spec in specs:
        match = [d for d in free if _norm(d["name"]) == _norm(spec.name)]
        how = "name"
        if len(match) != 1:
            match = [d for d in free if _perm(list(spec.shape), list(d["shape"])) != []]
            how = "shape" if len(match) == 1 else "position"
        if not match:
            raise RuntimeError(f"the converted model has no tensor matching '{spec.name}' "
                               f"{spec.shape_str()}")
        d = match[0]
        free.remove(d)
        perm = _perm(list(spec.shape), list(d["shape"]))
        scale, zero = d.get("quantization", (0.0, 0))
        entries.append({
            **spec.to_dict(), "onnx_name": spec.name, "runtime_name": d["name"],
            "runtime_shape": [int(v) for v in d["shape"]],
            "runtime_dtype": np.dtype(d["dtype"]).name, "transpose": perm,
            "runtime_layout": "NHWC" if perm and len(perm) == 4 else spec.layout,
            "quantization": {"scale": float(scale), "zero_point": int(zero)}
            if np.dtype(d["dtype"]).kind in "iu" and scale else None,
        })
        if how != "name" or d["name"] != spec.name:
            notes.append(f"'{spec.name}' is '{d['name']}' in the .tflite (bound by {how})")
    return entries, notes


def describe_io(tflite: Path, onnx_model: Path) -> tuple[list[dict], list[dict], list[str]]:
    from ai_edge_litert.interpreter import Interpreter

    from edgepack.importers.onnx import io_specs

    inputs, outputs = io_specs(onnx_model)
    it = Interpreter(model_path=str(tflite))
    ins, in_notes = bind([TensorSpec.from_dict(d) for d in inputs], it.get_input_details())
    outs, out_notes = bind([TensorSpec.from_dict(d) for d in outputs], it.get_output_details())
    return ins, outs, in_notes + out_notes


def describe_source_io(tflite: Path, source: dict) -> tuple[list[dict], list[dict], list[str]]:
    """The manifest's I/O of a .tflite written from the source model, bound to the source's
    own inputs and outputs (their shapes and dtypes as the .tflite has them)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(tflite))
    inputs = [TensorSpec.from_dict(d) for d in source["inputs"]]
    details = it.get_output_details()
    outputs = [TensorSpec(name, np.dtype(d["dtype"]).name, tuple(int(v) for v in d["shape"]))
               for name, d in zip(source["outputs"], details, strict=True)]
    ins, in_notes = bind(inputs, it.get_input_details())
    outs, out_notes = bind(outputs, details)
    return ins, outs, in_notes + out_notes


TARGET = TfliteTarget()
