"""ONNX Runtime backend (CPU execution provider) for ``.ort`` and ``.onnx`` files."""

from __future__ import annotations

import os
from pathlib import Path


class Backend:
    def __init__(self, model_path: Path, threads: int, options: dict) -> None:
        self.model_path, self.threads, self.options = model_path, threads, options
        self.session = None

    def load(self) -> dict:
        # telemetry would start short-lived threads during inference (counted under emulation)
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        import onnxruntime

        so = onnxruntime.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(self.model_path), so,
                                                    providers=["CPUExecutionProvider"])
        self.output_names = [o.name for o in self.session.get_outputs()]
        return {"runtime": "onnxruntime", "version": onnxruntime.__version__,
                "threads": self.threads}

    def run(self, feeds: dict) -> dict:
        return dict(zip(self.output_names, self.session.run(self.output_names, feeds),
                        strict=True))

    def close(self) -> None:
        self.session = None
