"""TensorFlow models: Keras (``.keras``; legacy ``.h5``/``.hdf5`` through tf_keras) and
SavedModel folders. TensorFlow, Keras and tf2onnx live in an isolated toolchain
(``edgepack toolchain install tensorflow``); this module runs its worker there.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgepack import procs
from edgepack.artifact import TensorSpec
from edgepack.errors import ModelError
from edgepack.importers.base import Importer, Source, SourceIO
from edgepack.toolchains import Toolchain

WORKER = Path(__file__).with_name("tf_worker.py")
TOOLCHAIN = Toolchain("tf2onnx-1.17.0", "tensorflow", ((3, 10), (3, 12)), "2.2 GB", "python",
                      ("tensorflow", "tf2onnx", "tf-keras", "keras", "numpy"))


def worker(args: list, what: str, timeout: float) -> None:
    """Run the TensorFlow worker in the toolchain; ModelError with its error line."""
    # -I: the worker's folder is not on sys.path (its tflite.py would shadow a package)
    done = procs.run([str(TOOLCHAIN.bin / "python"), "-I", str(WORKER), *map(str, args)],
                     what=what, timeout=timeout, env=TOOLCHAIN.env(), capture=True)
    if not done.ok:
        errors = [ln[len("error: "):] for ln in done.output.splitlines()
                  if ln.startswith("error: ")]
        raise ModelError(errors[-1] if errors else f"{done.reason}: {done.last_line()}")


class TensorflowImporter(Importer):
    format = "keras"
    toolchain = TOOLCHAIN

    def check(self, source: Source) -> None:
        if source.format == "saved-model":
            if not (source.path / "saved_model.pb").is_file():
                raise ModelError(f"{source.path} is not a SavedModel folder: it has no "
                                 "saved_model.pb")
            if not (source.path / "variables").is_dir():
                raise ModelError(f"SavedModel {source.path} has no variables/ folder; copy "
                                 "the whole SavedModel folder")
        elif source.path.suffix in (".h5", ".hdf5"):
            if source.path.read_bytes()[:8] != b"\x89HDF\r\n\x1a\n":
                raise ModelError(f"{source.path} is not an HDF5 file (a legacy Keras .h5 "
                                 "starts with the HDF5 signature); is it complete?")
        elif source.path.suffix == ".keras":
            import zipfile

            if not zipfile.is_zipfile(source.path):
                raise ModelError(f"{source.path} is not a .keras archive (a zip file); is it "
                                 "complete?")

    def describe(self, source: Source, workdir: Path, timeout: float) -> SourceIO:
        out = workdir / "describe.json"
        worker(["describe", source.path, source.format, out], "the TensorFlow importer",
               timeout)
        d = json.loads(out.read_text())
        inputs = [TensorSpec(i["name"], i["dtype"], tuple(i["shape"])) for i in d["inputs"]]
        return SourceIO(inputs, d["outputs"], "NHWC", d["notes"])

    def _spec(self, inputs: list[TensorSpec], outputs: list[str], workdir: Path,
              **extra) -> Path:
        spec = workdir / "io.json"
        spec.write_text(json.dumps({"inputs": [{"name": s.name, "dtype": s.dtype,
                                                 "shape": list(s.shape)} for s in inputs],
                                    "outputs": outputs, **extra}))
        return spec

    def export(self, source: Source, inputs: list[TensorSpec], outputs: list[str], dst: Path,
               workdir: Path, timeout: float) -> dict:
        record = workdir / "export.json"
        keep = dst.with_name("source_saved_model")  # for converters that read SavedModel
        worker(["export", source.path, source.format,
                self._spec(inputs, outputs, workdir, keep=str(keep)), dst, record],
               "tf2onnx", timeout)
        return {**json.loads(record.read_text()), "outputs": outputs}

    def run(self, source: Source, inputs: list[TensorSpec], outputs: list[str], data: Path,
            out: Path, workdir: Path, timeout: float) -> dict:
        worker(["run", source.path, source.format, self._spec(inputs, outputs, workdir), data,
                out], "TensorFlow", timeout)
        return {"framework": f"TensorFlow ({TOOLCHAIN.version('tensorflow')})"}

    def to_tflite(self, source: Source, inputs: list[TensorSpec], outputs: list[str],
                  precision: str, calib: Path | None, out: Path, workdir: Path,
                  timeout: float) -> dict:
        """TensorFlow's own TFLite converter (a native lowering path for the tflite target)."""
        worker(["tflite", source.path, source.format, self._spec(inputs, outputs, workdir),
                precision, calib or "-", out], "tf.lite.TFLiteConverter", timeout)
        return {"converter": f"tf.lite.TFLiteConverter (TensorFlow "
                             f"{TOOLCHAIN.version('tensorflow')})"}


IMPORTER = TensorflowImporter()
