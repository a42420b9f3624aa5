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

import re
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from edgepack.artifact import TensorSpec
from edgepack.data import Dataset
from edgepack.errors import DataError
from edgepack.profiles import DeviceProfile
from edgepack.targets.base import Lowered, LowerOptions, Runner, Target
from edgepack.toolchains import TOOLCHAINS, Toolchain

INSTALL_HINT = "run: edgepack toolchain install tflite"
FILES = {"fp32": "float32", "fp16": "float16", "int8-dynamic": "dynamic_range_quant",
         "int8": "integer_quant"}
# stops onnx2tf from downloading sample images, which it tries for 3-channel inputs
DOWNLOAD_GUARD = "calibration_image_sample_data_20x128x128x3_float32.npy"


class TfliteRunner(Runner):
    backend_name = "tflite"


def _backend_of(chain: Toolchain) -> str:
    return "flatbuffer_direct" if chain.version("onnx2tf").startswith("2.") else "tf_converter"


def strategy_name(chain: Toolchain) -> str:
    return f"{chain.name} {_backend_of(chain)}"


class TfliteTarget(Target):
    name = "tflite"
    package = "ai-edge-litert"
    module = "ai_edge_litert"
    extra = "tflite"
    runner = TfliteRunner

    def missing_toolchain(self) -> str | None:
        if not any(chain.installed() for chain in TOOLCHAINS["tflite"]):
            return f"the tflite target needs its onnx2tf toolchain, which is not installed; " \
                   f"{INSTALL_HINT}"
        return None

    def strategies(self, precision: str, profile: DeviceProfile) -> list[tuple[str, str | None]]:
        out = []
        for chain in TOOLCHAINS["tflite"]:
            why = None
            if not chain.installed():
                lo = chain.python[0]
                why = (f"not installed ({INSTALL_HINT})" if chain.find_python() else
                       f"needs Python >= {lo[0]}.{lo[1]}, none found")
            out.append((strategy_name(chain), why))
        return out

    def lower(self, model: Path, precision: str, profile: DeviceProfile,
              calib: Dataset | None, out_dir: Path, options: LowerOptions) -> Lowered:
        chain = next(c for c in TOOLCHAINS["tflite"] if strategy_name(c) == options.strategy)
        quant = precision in ("int8", "int8-dynamic")
        if precision == "int8" and calib is None:
            raise DataError("static int8 needs calibration data (--calib or --data)")
        stem = "model"
        if precision == "int8" and options.int8_io:
            stem_file = f"{stem}_full_integer_quant.tflite"
        else:
            stem_file = f"{stem}_{FILES[precision]}.tflite"
        run_dir, stats = _convert(chain, model, calib if quant else None, quant, options)
        produced = run_dir / stem_file
        if not produced.is_file():
            raise RuntimeError(f"{options.strategy} wrote no {stem_file} (see the cell's log)")
        shutil.copyfile(produced, out_dir / "model.tflite")
        inputs, outputs, io_notes = describe_io(out_dir / "model.tflite", model)
        notes = [f"converted by {options.strategy} ({stem_file})", *io_notes]
        if quant and calib is not None and precision == "int8":
            notes.append(f"int8 calibrated on {calib.samples} samples ({calib.kind}: "
                         f"{calib.source}); {'int8' if options.int8_io else 'float32'} I/O")
        return Lowered("model.tflite", ["model.tflite"], inputs, outputs, notes=notes,
                       stats=stats)


def _mean_std(rank: int) -> tuple[str, str]:
    nest = lambda v: "[" * rank + v + "]" * rank  # noqa: E731
    return nest("0.0"), nest("1.0")


def _convert(chain: Toolchain, model: Path, calib: Dataset | None, quant: bool,
             options: LowerOptions) -> tuple[Path, dict]:
    """Run onnx2tf once per (strategy, quantized?) per build; later cells reuse the files."""
    import onnx

    key = f"{chain.name}-{'quant' if quant else 'float'}"
    cache = Path(options.cache_dir or tempfile.mkdtemp()) / key
    if (cache / "done").is_file():
        return cache / "out", {"converter": strategy_name(chain), "cached": True}
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
        for name, arr in calib.arrays.items():
            data = arr.transpose(0, 2, 3, 1) if arr.ndim == 4 else arr
            np.save(cache / f"calib_{_safe(name)}.npy", np.ascontiguousarray(data, np.float32))
            mean, std = _mean_std(data.ndim)
            cmd += ["-cind", name, f"calib_{_safe(name)}.npy", mean, std]
    elif quant:
        cmd.append("-odrqt")
    start = time.perf_counter()
    with open(options.log or cache / "onnx2tf.log", "ab") as log:
        log.write(f"$ (cd {cache}) {' '.join(cmd)}\n".encode())
        log.flush()
        try:
            proc = subprocess.run(cmd, cwd=cache, env=chain.env(), stdout=log,
                                  stderr=subprocess.STDOUT, timeout=options.timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{strategy_name(chain)} timed out after "
                               f"{options.timeout:.0f} s") from None
    seconds = time.perf_counter() - start
    # includes the lowering process's RSS at fork as a floor; the converter's is far above it
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    stats = {"converter": strategy_name(chain), "cached": False,
             "convert_seconds": round(seconds, 2), "converter_exit_code": proc.returncode,
             "converter_peak_rss_bytes": peak}
    (cache / "done").write_text(str(proc.returncode))
    (cache / "stats.txt").write_text(repr(stats))
    return cache / "out", stats


def _safe(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_.-]", "_", name)


def _norm(name: str) -> str:
    name = name.lower().removeprefix("serving_default_").split(":")[0]
    return re.sub(r"[^0-9a-z]", "", name)


def _perm(onnx_shape: list, runtime_shape: list) -> list[int] | None:
    """The transpose taking the ONNX layout to the runtime's, None if they are the same."""
    if list(onnx_shape) == list(runtime_shape):
        return None
    rank = len(onnx_shape)
    if rank >= 3:
        perm = [0, *range(2, rank), 1]  # channels last
        if [onnx_shape[i] for i in perm] == list(runtime_shape):
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

    from edgepack.importers.onnx import graph_inputs, read_onnx, tensor_spec

    graph = read_onnx(onnx_model)
    it = Interpreter(model_path=str(tflite))
    ins, in_notes = bind([tensor_spec(i) for i in graph_inputs(graph)], it.get_input_details())
    outs, out_notes = bind([tensor_spec(o) for o in graph.graph.output], it.get_output_details())
    return ins, outs, in_notes + out_notes


TARGET = TfliteTarget()
