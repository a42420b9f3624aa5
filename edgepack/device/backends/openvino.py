"""OpenVINO backend: an IR (``model.xml`` + ``model.bin``) on the CPU plugin.

``options["openvino_config"]`` holds plugin properties recorded at build time (e.g. an
``INFERENCE_PRECISION_HINT`` pin for fp32 bundles); they are applied over the LATENCY hint and
the thread count.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class Backend:
    def __init__(self, model_path: Path, threads: int, options: dict) -> None:
        self.model_path, self.threads, self.options = model_path, threads, options
        self.request = self.compiled = None

    def load(self) -> dict:
        import openvino as ov

        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": self.threads}
        config.update(self.options.get("openvino_config", {}))
        self.compiled = ov.Core().compile_model(str(self.model_path), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.tensor = ov.Tensor
        self.output_names = [o.get_any_name() for o in self.compiled.outputs]
        return {
            "runtime": "openvino", "version": ov.__version__, "threads": self.threads,
            "inference_precision": str(self.compiled.get_property("INFERENCE_PRECISION_HINT")),
            "config": {k: str(v) for k, v in config.items()},
        }

    def run(self, feeds: dict) -> dict:
        # zero-copy inputs and a plain infer(): ~12 us less per call than infer(feeds)
        for name, arr in feeds.items():
            self.request.set_tensor(name, self.tensor(np.asarray(arr, order="C"),
                                                      shared_memory=True))
        self.request.infer()
        return {name: self.request.get_output_tensor(i).data.copy()
                for i, name in enumerate(self.output_names)}

    def close(self) -> None:
        self.request = self.compiled = None
