"""TFLite models (``.tflite``): described and run by LiteRT in edgepack's environment
(``pip install 'edgepack[tflite]'``), turned into ONNX by tf2onnx in the TensorFlow toolchain.
A bundle for the tflite target can keep the original file (a native lowering path).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgepack.artifact import TensorSpec
from edgepack.device import core
from edgepack.errors import ModelError, first_line
from edgepack.importers.base import Importer, Source, SourceIO
from edgepack.importers.tf import TOOLCHAIN, worker


def interpreter(path: Path, delegate: bool = True):
    """LiteRT's interpreter of ``path`` with its tensors allocated, and whether it runs with
    the default XNNPack delegate: it does unless the delegate cannot prepare the model (or
    ``delegate=False``), then LiteRT's builtin kernels run it alone. ModelError when LiteRT
    cannot load the file at all."""
    try:
        from ai_edge_litert import interpreter as lite
    except ImportError:
        from tflite_runtime import interpreter as lite
    kwargs = {} if delegate else {
        "experimental_op_resolver_type": lite.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    try:
        it = lite.Interpreter(model_path=str(path), **kwargs)
        it.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        if delegate and _delegate_failed(e):
            return interpreter(path, delegate=False)
        raise ModelError(f"{path} is not a TFLite model LiteRT can load ({first_line(e)})"
                         ) from None
    return it, delegate


def _delegate_failed(e: Exception) -> bool:
    return "xnnpack" in str(e).lower() or "delegate" in str(e).lower()


def delegate_note(delegated: bool) -> list[str]:
    """What the report says when the reference had to run without the XNNPack delegate."""
    if delegated:
        return []
    return ["LiteRT's XNNPack delegate could not prepare this model: the reference runs on "
            "LiteRT's builtin kernels (without the delegate)"]


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
        it, delegated = interpreter(source.path)
        inputs = [TensorSpec(d["name"], np.dtype(d["dtype"]).name,
                             tuple(int(v) for v in d["shape"]))
                  for d in it.get_input_details()]
        # two outputs may be one tensor (the importer names them apart)
        outputs = [d["name"] for d in it.get_output_details()]
        quantized = any(np.dtype(d["dtype"]).kind in "iu" and d["quantization"][0]
                        for d in it.get_tensor_details())
        notes = ["the model is already int8-quantized"] if quantized else []
        notes += delegate_note(delegated)
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
        arrays = core.load_npz(data)
        it, delegated = interpreter(source.path)
        try:
            collected = _run_samples(it, inputs, outputs, arrays)
        except RuntimeError as e:  # XNNPack may also fail only when it first runs a node
            if not (delegated and _delegate_failed(e)):
                raise
            it, delegated = interpreter(source.path, delegate=False)
            collected = _run_samples(it, inputs, outputs, arrays)
        np.savez(out, **core.pack(collected))
        return {"framework": "LiteRT", "notes": delegate_note(delegated)}


def _run_samples(it, inputs: list[TensorSpec], outputs: list[str], arrays: dict) -> dict:
    """Every sample through the interpreter; outputs by position (two may be one tensor)."""
    ins = {d["name"]: d["index"] for d in it.get_input_details()}
    outs = [d["index"] for d in it.get_output_details()]
    collected: dict[str, list] = {n: [] for n in outputs}
    for i in range(core.sample_count({s.name: arrays[s.name] for s in inputs})):
        for s in inputs:
            it.set_tensor(ins[s.name], np.asarray(arrays[s.name][i], order="C"))
        it.invoke()
        for name, index in zip(outputs, outs, strict=True):
            collected[name].append(np.array(it.get_tensor(index)))
    return collected



IMPORTER = TfliteImporter()
