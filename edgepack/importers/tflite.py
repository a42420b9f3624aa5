"""TFLite models (``.tflite``): described and run by LiteRT in edgepack's environment
(``pip install 'edgepack[tflite]'``), turned into ONNX by tf2onnx in the TensorFlow toolchain.
A bundle for the tflite target can keep the original file (a native lowering path).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgepack.artifact import TensorSpec
from edgepack.device import core
from edgepack.errors import ModelError
from edgepack.importers.base import Importer, Source, SourceIO
from edgepack.importers.tf import TOOLCHAIN, worker


def interpreter(path: Path):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        from tflite_runtime.interpreter import Interpreter
    try:
        it = Interpreter(model_path=str(path))
        it.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise ModelError(f"{path} is not a TFLite model LiteRT can load ({_first_line(e)})"
                         ) from None
    return it


class TfliteImporter(Importer):
    format = "tflite"
    extra = "tflite"
    module = "ai_edge_litert"

    def missing(self) -> str | None:
        return super().missing() or (None if TOOLCHAIN.installed() else (
            "importing tflite models needs the tf2onnx-1.17.0 toolchain (tf2onnx), which is not "
            "installed; run: edgepack toolchain install tensorflow"))

    def check(self, source: Source) -> None:
        head = source.path.read_bytes()[:8]
        if len(head) < 8 or head[4:8] != b"TFL3":
            raise ModelError(f"{source.path} is not a TFLite flatbuffer (no TFL3 identifier); "
                             "is it complete?")

    def describe(self, source: Source, workdir: Path, timeout: float) -> SourceIO:
        it = interpreter(source.path)
        inputs = [TensorSpec(d["name"], np.dtype(d["dtype"]).name,
                             tuple(int(v) for v in d["shape"]))
                  for d in it.get_input_details()]
        outputs = [d["name"] for d in it.get_output_details()]
        quantized = any(np.dtype(d["dtype"]).kind in "iu" and d["quantization"][0]
                        for d in it.get_tensor_details())
        notes = ["the model is already int8-quantized"] if quantized else []
        for d in it.get_input_details():
            scale, zero = d.get("quantization", (0.0, 0))
            if scale:
                notes.append(f"input '{d['name']}' is quantized ({np.dtype(d['dtype']).name}, "
                             f"scale {scale:g}, zero point {zero}): data must be too")
        return SourceIO(inputs, outputs, "NHWC", notes, quantized)

    def export(self, source: Source, inputs: list[TensorSpec], outputs: list[str], dst: Path,
               workdir: Path, timeout: float) -> dict:
        import json

        spec = workdir / "io.json"
        spec.write_text(json.dumps({"inputs": [], "outputs": outputs}))
        record = workdir / "export.json"
        worker(["export", source.path, "tflite", spec, dst, record], "tf2onnx", timeout)
        return {**json.loads(record.read_text()), "outputs": outputs}

    def run(self, source: Source, inputs: list[TensorSpec], outputs: list[str], data: Path,
            out: Path, workdir: Path, timeout: float) -> dict:
        it = interpreter(source.path)
        ins = {d["name"]: d["index"] for d in it.get_input_details()}
        outs = {d["name"]: d["index"] for d in it.get_output_details()}
        arrays = core.load_npz(data)
        collected: dict[str, list] = {n: [] for n in outputs}
        for i in range(core.sample_count({s.name: arrays[s.name] for s in inputs})):
            for s in inputs:
                it.set_tensor(ins[s.name], np.asarray(arrays[s.name][i], order="C"))
            it.invoke()
            for name in outputs:
                collected[name].append(np.array(it.get_tensor(outs[name])))
        np.savez(out, **core.pack(collected))
        return {"framework": "LiteRT"}


def _first_line(e: Exception) -> str:
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    return lines[0][:300] if lines else type(e).__name__


IMPORTER = TfliteImporter()
