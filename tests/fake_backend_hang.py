"""A device backend (shipped as a bundle's backend.py) that runs ONNX Runtime, except in the
bundle's own selftest, where it hangs: the build's evaluation passes, the selftest never ends."""

import sys
import time


class Backend:
    def __init__(self, model_path, threads, options):
        self.model_path, self.threads = model_path, threads

    def load(self):
        if "selftest" in sys.argv:
            time.sleep(3600)
        import onnxruntime

        self.session = onnxruntime.InferenceSession(str(self.model_path),
                                                    providers=["CPUExecutionProvider"])
        self.names = [o.name for o in self.session.get_outputs()]
        return {"runtime": "onnxruntime", "version": onnxruntime.__version__}

    def run(self, feeds):
        return dict(zip(self.names, self.session.run(self.names, feeds), strict=True))

    def close(self):
        self.session = None
