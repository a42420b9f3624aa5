"""Device backend of the onnxfile target: ONNX Runtime on a .onnx file (numpy + runtime only)."""


class Backend:
    def __init__(self, model_path, threads, options):
        self.model_path, self.threads = model_path, threads

    def load(self):
        import onnxruntime

        so = onnxruntime.SessionOptions()
        so.intra_op_num_threads = self.threads
        self.session = onnxruntime.InferenceSession(str(self.model_path), so,
                                                    providers=["CPUExecutionProvider"])
        self.names = [o.name for o in self.session.get_outputs()]
        return {"runtime": "onnxruntime", "version": onnxruntime.__version__,
                "threads": self.threads}

    def run(self, feeds):
        return dict(zip(self.names, self.session.run(self.names, feeds), strict=True))

    def close(self):
        self.session = None
