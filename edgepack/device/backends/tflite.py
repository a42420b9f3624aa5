"""LiteRT backend (``ai-edge-litert``, or ``tflite-runtime`` where that is what is installed).

Tensors are bound by the runtime names the manifest records, transposed and (de)quantized as
recorded, so callers feed and get back the ONNX names, shapes and layouts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class Backend:
    def __init__(self, model_path: Path, threads: int, options: dict) -> None:
        self.model_path, self.threads, self.options = model_path, threads, options
        self.interpreter = None

    def load(self) -> dict:
        try:
            from ai_edge_litert import interpreter as lite
            name, module = "ai-edge-litert", "ai_edge_litert"
        except ImportError:
            from tflite_runtime import interpreter as lite
            name, module = "tflite-runtime", "tflite_runtime"
        delegate = "XNNPack (default)"
        try:
            self.interpreter = lite.Interpreter(model_path=str(self.model_path),
                                                num_threads=self.threads)
            self.interpreter.allocate_tensors()
        except RuntimeError as e:
            if "XNNPack" not in str(e):
                raise
            # the default delegate cannot prepare some graphs; the builtin kernels can
            self.interpreter = lite.Interpreter(
                model_path=str(self.model_path), num_threads=self.threads,
                experimental_op_resolver_type=lite.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
            self.interpreter.allocate_tensors()
            delegate = "none: XNNPack could not prepare this model, builtin kernels run it"
        io = self.options["io"]
        ins = {d["name"]: d["index"] for d in self.interpreter.get_input_details()}
        outs = {d["name"]: d["index"] for d in self.interpreter.get_output_details()}
        self.inputs = [(t, ins[t["runtime_name"]]) for t in io["inputs"]]
        self.outputs = [(t, outs[t["runtime_name"]]) for t in io["outputs"]]
        version = getattr(__import__(module), "__version__", "?")
        return {"runtime": name, "version": version, "threads": self.threads,
                "delegate": delegate}

    def run(self, feeds: dict) -> dict:
        it = self.interpreter
        for t, index in self.inputs:
            arr = feeds[t["name"]]
            if t["transpose"]:
                arr = arr.transpose(t["transpose"])
            q = t["quantization"]
            dtype = np.dtype(t["runtime_dtype"])
            if q:
                info = np.iinfo(dtype)
                arr = np.clip(np.round(arr / q["scale"] + q["zero_point"]), info.min, info.max)
            it.set_tensor(index, np.asarray(arr, dtype=dtype, order="C"))  # keeps 0-d
        it.invoke()
        result = {}
        for t, index in self.outputs:
            arr = it.get_tensor(index)
            q = t["quantization"]
            if q:
                arr = (arr.astype(np.float32) - q["zero_point"]) * np.float32(q["scale"])
            if t["transpose"]:
                arr = arr.transpose(np.argsort(t["transpose"]))
            result[t["name"]] = np.asarray(arr, dtype=t["dtype"])
        return result

    def close(self) -> None:
        self.interpreter = None
