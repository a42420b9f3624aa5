"""TensorFlow-side worker of the Keras/SavedModel/TFLite importers. It runs inside the
isolated TensorFlow toolchain (``edgepack toolchain install tensorflow``), never in edgepack's
own environment, so it imports only numpy, tensorflow, tf_keras, keras and tf2onnx.

    python tf_worker.py describe SOURCE FORMAT OUT.json
    python tf_worker.py export   SOURCE FORMAT SPEC.json OUT.onnx OUT.json
    python tf_worker.py run      SOURCE FORMAT SPEC.json DATA.npz OUT.npz
    python tf_worker.py tflite   SOURCE FORMAT SPEC.json PRECISION CALIB.npz|- OUT.tflite

FORMAT is keras (a .keras or legacy .h5/.hdf5 file), saved-model (a folder) or tflite.
Failures print one line starting with "error:" and exit 2.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402


class Failure(Exception):
    pass


def load_keras(path: Path):
    """A .keras file with Keras 3; a legacy .h5/.hdf5 with tf_keras (Keras 2), else Keras 3."""
    errors = []
    loaders = []
    if path.suffix in (".h5", ".hdf5"):
        loaders.append(("tf_keras", lambda: __import__("tf_keras").models.load_model(
            str(path), compile=False)))
    loaders.append(("keras", lambda: __import__("keras").models.load_model(str(path),
                                                                        compile=False)))
    for name, load in loaders:
        try:
            return load(), name
        except Exception as e:  # the next loader; all reasons if none works
            errors.append(f"{name}: {type(e).__name__}: {first_line(e)}")
    raise Failure(f"{path} cannot be loaded as a Keras model ({'; '.join(errors)})")


def signature(model_dir: Path):
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(model_dir))
    except Exception as e:
        raise Failure(f"{model_dir} is not a loadable SavedModel ({type(e).__name__}: "
                      f"{first_line(e)})") from None
    sigs = getattr(loaded, "signatures", {})
    if "serving_default" not in sigs:
        raise Failure(f"{model_dir} has no serving_default signature")
    return loaded, sigs["serving_default"]


def describe(source: Path, fmt: str) -> dict:
    import tensorflow as tf

    if fmt == "keras":
        model, loader = load_keras(source)
        inputs = [{"name": t.name.split(":")[0], "dtype": t.dtype.name if hasattr(
            t.dtype, "name") else str(t.dtype), "shape": [None if d is None else int(d)
                                                     for d in t.shape]}
                  for t in model.inputs]
        outputs = [t.name.split(":")[0].split("/")[0] for t in model.outputs]
        return {"inputs": inputs, "outputs": _unique(outputs), "notes": [
            f"Keras model loaded with {loader}; TensorFlow {tf.__version__}"]}
    _, fn = signature(source)
    specs = fn.structured_input_signature[1]
    inputs = [{"name": k, "dtype": v.dtype.name, "shape": [None if d is None else int(d)
                                                             for d in v.shape]}
              for k, v in sorted(specs.items())]
    outputs = sorted(fn.structured_outputs)
    return {"inputs": inputs, "outputs": outputs,
            "notes": [f"SavedModel serving_default signature; TensorFlow {tf.__version__}"]}


def _unique(names: list) -> list:
    seen, out = {}, []
    for n in names:
        seen[n] = seen.get(n, -1) + 1
        out.append(n if not seen[n] else f"{n}_{seen[n]}")
    return out


def saved_model_for(source: Path, fmt: str, spec: dict, tmp: Path) -> Path:
    """A SavedModel with a static-shape serving signature named after the source's I/O."""
    import tensorflow as tf

    inputs = spec["inputs"]
    module = tf.Module()
    if fmt == "keras":
        model, _ = load_keras(source)
        module.model = model  # tracked, so that its variables are saved
        call = model
        out_names = spec["outputs"]
    else:
        loaded, fn = signature(source)
        module.loaded = loaded
        out_names = spec["outputs"]

        def call(*xs):
            result = fn(**{i["name"]: x for i, x in zip(inputs, xs, strict=True)})
            return [result[n] for n in out_names]

    sig = [tf.TensorSpec(i["shape"], i["dtype"], name=i["name"]) for i in inputs]

    @tf.function(input_signature=sig)
    def serve(*xs):
        result = call(list(xs) if len(xs) > 1 else xs[0])
        if isinstance(result, dict):
            result = list(result.values())
        if not isinstance(result, list | tuple):
            result = [result]
        return {n: tf.identity(r, name=n) for n, r in zip(out_names, result, strict=True)}

    folder = tmp / "static_saved_model"
    module.serve = serve
    tf.saved_model.save(module, str(folder), signatures={"serving_default": serve})
    return folder


def export(source: Path, fmt: str, spec: dict, out: Path) -> dict:
    """tf2onnx on the source; for Keras and SavedModel sources also keep the static-shape
    SavedModel it was made from (``spec["keep"]``: what other converters can read)."""
    kept = {}
    with tempfile.TemporaryDirectory() as tmp:
        if fmt == "tflite":  # --opt=value: a path starting with '-' stays a value
            cmd = [f"--tflite={source}"]
        else:
            folder = saved_model_for(source, fmt, spec, Path(tmp))
            if spec.get("keep"):
                import shutil

                shutil.copytree(folder, spec["keep"], dirs_exist_ok=True)
                kept = {"saved_model": spec["keep"]}
            cmd = [f"--saved-model={folder}"]
        proc = subprocess.run([sys.executable, "-m", "tf2onnx.convert", *cmd, f"--output={out}",
                               "--opset", str(spec.get("opset", 17))],
                              capture_output=True, text=True)
    if proc.returncode != 0 or not out.is_file():
        lines = [ln for ln in proc.stderr.splitlines() if "Error" in ln or "error" in ln]
        raise Failure("tf2onnx failed: " + (lines[-1] if lines else f"exit {proc.returncode}"))
    import tf2onnx

    return {"exporter": f"tf2onnx {tf2onnx.__version__}", **kept}


def run(source: Path, fmt: str, spec: dict, data: Path, out: Path) -> dict:
    import tensorflow as tf

    with np.load(data) as z:
        arrays = {k: z[k] for k in z.files}
    inputs, outputs = spec["inputs"], spec["outputs"]
    n = len(arrays[inputs[0]["name"]])
    collected = {o: [] for o in outputs}
    if fmt == "keras":
        model, _ = load_keras(source)
        for i in range(n):
            xs = [arrays[s["name"]][i] for s in inputs]
            result = model(xs if len(xs) > 1 else xs[0], training=False)
            if isinstance(result, dict):
                result = list(result.values())
            if not isinstance(result, list | tuple):
                result = [result]
            for name, value in zip(outputs, result, strict=True):
                collected[name].append(np.asarray(value))
    else:
        _, fn = signature(source)
        for i in range(n):
            result = fn(**{s["name"]: tf.constant(arrays[s["name"]][i]) for s in inputs})
            for name in outputs:
                collected[name].append(np.asarray(result[name]))
    packed = {k: np.stack(v) for k, v in collected.items()}
    np.savez(out, **packed)
    return {"framework": f"TensorFlow {tf.__version__}"}


def to_tflite(source: Path, fmt: str, spec: dict, precision: str, calib: str,
              out: Path) -> dict:
    """TensorFlow's own TFLite converter (and its quantizer) on the source model."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        # from the static-shape SavedModel's signature, loaded back: converting a Keras 3
        # model's SavedModel directly gave NaN outputs here
        loaded = tf.saved_model.load(str(saved_model_for(source, fmt, spec, Path(tmp))))
        converter = tf.lite.TFLiteConverter.from_concrete_functions(
            [loaded.signatures["serving_default"]], loaded)
        if precision == "fp16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif precision == "int8-dynamic":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        elif precision == "int8":
            with np.load(calib) as z:
                arrays = {k: z[k] for k in z.files}
            names = [i["name"] for i in spec["inputs"]]

            def samples():
                for i in range(len(arrays[names[0]])):
                    yield [arrays[n][i].astype(np.float32) for n in names]

            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = samples
        out.write_bytes(converter.convert())
    return {"converter": f"tf.lite.TFLiteConverter (TensorFlow {tf.__version__})"}


def first_line(e: Exception) -> str:
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    return lines[0][:300] if lines else type(e).__name__


def main(argv: list) -> int:
    command, source, fmt = argv[0], Path(argv[1]), argv[2]
    try:
        if command == "describe":
            result = describe(source, fmt)
            Path(argv[3]).write_text(json.dumps(result))
        elif command == "export":
            spec = json.loads(Path(argv[3]).read_text())
            result = export(source, fmt, spec, Path(argv[4]))
            Path(argv[5]).write_text(json.dumps(result))
        elif command == "run":
            spec = json.loads(Path(argv[3]).read_text())
            run(source, fmt, spec, Path(argv[4]), Path(argv[5]))
        elif command == "tflite":
            spec = json.loads(Path(argv[3]).read_text())
            to_tflite(source, fmt, spec, argv[4], argv[5], Path(argv[6]))
        else:
            raise Failure(f"unknown command {command}")
    except Failure as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # the framework's own failure: one line for the user
        import traceback

        traceback.print_exc()
        print(f"error: {command} failed in TensorFlow: {type(e).__name__}: {first_line(e)}",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
