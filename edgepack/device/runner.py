#!/usr/bin/env python3
"""edgepack device runner: check, run and time this bundle on the device.

    python run.py selftest            verify file checksums and golden outputs
    python run.py infer IN.npz|IN.npy [-o OUT.npz]
    python run.py bench [--runs N | --min-time S] [--warmup N] [--threads N]

Needs only the Python standard library, numpy and this bundle's runtime (see
requirements.txt); edgepack itself is not needed. edgepack uses this same file on the build
host to verify and time the bundle, so the host and the device run identical code.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

MANIFEST = "manifest.json"


# --------------------------------------------------------------------------- runtimes
class Backend:
    """One loaded model in one runtime. Subclasses fill ``_load`` and ``_run``."""

    def __init__(self, model_path: Path, threads: int, options: dict) -> None:
        self.model_path = Path(model_path)
        self.threads = threads
        self.options = dict(options)
        self.info: dict = {}  # what the runtime actually configured (recorded in reports)

    def load(self) -> None:
        self._load()

    def run(self, feeds: dict) -> dict:
        return self._run(feeds)

    def close(self) -> None:
        pass


class OrtBackend(Backend):
    def _load(self) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(self.model_path), so, providers=["CPUExecutionProvider"]
        )
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.info = {"runtime": "onnxruntime", "version": ort.__version__,
                     "threads": self.threads}

    def _run(self, feeds: dict) -> dict:
        return dict(zip(self.output_names, self.session.run(self.output_names, feeds),
                        strict=True))

    def close(self) -> None:
        self.session = None


class OpenvinoBackend(Backend):
    def _load(self) -> None:
        import openvino as ov

        core = ov.Core()
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": self.threads}
        for key, value in self.options.get("openvino_config", {}).items():
            config[key] = value
        self.compiled = core.compile_model(str(self.model_path), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.tensor = ov.Tensor
        self.output_names = [o.get_any_name() for o in self.compiled.outputs]
        self.info = {
            "runtime": "openvino", "version": ov.__version__, "threads": self.threads,
            "inference_precision": str(self.compiled.get_property("INFERENCE_PRECISION_HINT")),
            "config": {k: str(v) for k, v in config.items()},
        }

    def _run(self, feeds: dict) -> dict:
        # zero-copy inputs and a plain infer(): ~12 us less per call than infer(feeds)
        for name, arr in feeds.items():
            self.request.set_tensor(name, self.tensor(np.ascontiguousarray(arr),
                                                      shared_memory=True))
        self.request.infer()
        return {name: self.request.get_output_tensor(i).data.copy()
                for i, name in enumerate(self.output_names)}

    def close(self) -> None:
        self.request = self.compiled = None


class TfliteBackend(Backend):
    """ai-edge-litert (or tflite-runtime where that is what is installed). Tensors are bound
    by the runtime names the manifest records, transposed and (de)quantized as recorded, so
    callers feed and get back the ONNX names, shapes and layouts."""

    def _load(self) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
            name, module = "ai-edge-litert", "ai_edge_litert"
        except ImportError:
            from tflite_runtime.interpreter import Interpreter
            name, module = "tflite-runtime", "tflite_runtime"
        self.interpreter = Interpreter(model_path=str(self.model_path), num_threads=self.threads)
        self.interpreter.allocate_tensors()
        io = self.options["io"]
        ins = {d["name"]: d["index"] for d in self.interpreter.get_input_details()}
        outs = {d["name"]: d["index"] for d in self.interpreter.get_output_details()}
        self.inputs = [(t, ins[t["runtime_name"]]) for t in io["inputs"]]
        self.outputs = [(t, outs[t["runtime_name"]]) for t in io["outputs"]]
        version = getattr(__import__(module), "__version__", "?")
        self.info = {"runtime": name, "version": version, "threads": self.threads}

    def _run(self, feeds: dict) -> dict:
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
            it.set_tensor(index, np.ascontiguousarray(arr, dtype=dtype))
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


BACKENDS = {"onnxruntime": OrtBackend, "openvino": OpenvinoBackend, "tflite": TfliteBackend}


# --------------------------------------------------------------------------- timing
def percentile(sorted_values: list, q: float) -> float:
    """Linear-interpolated percentile of an already sorted list (q in 0..100)."""
    k = (len(sorted_values) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def time_inference(run, feeds: dict, warmup: int = 10, runs: int | None = None,
                   min_time: float | None = None) -> dict:
    """Time ``run(feeds)``: ``warmup`` untimed calls, then ``runs`` calls or at least
    ``min_time`` seconds (and at least 10 calls). Returns milliseconds per call."""
    if runs is None and min_time is None:
        min_time = 1.0
    for _ in range(warmup):
        run(feeds)
    times = []
    start = time.perf_counter_ns()
    while True:
        t0 = time.perf_counter_ns()
        run(feeds)
        times.append(time.perf_counter_ns() - t0)
        if runs is not None:
            if len(times) >= runs:
                break
        elif len(times) >= 10 and time.perf_counter_ns() - start >= min_time * 1e9:
            break
    ms = sorted(t / 1e6 for t in times)
    return {
        "p50": percentile(ms, 50), "p90": percentile(ms, 90), "p99": percentile(ms, 99),
        "mean": sum(ms) / len(ms), "min": ms[0], "max": ms[-1], "runs": len(ms),
        "warmup": warmup,
    }


def _proc_status(key: str) -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def rss_bytes() -> int:
    """Current resident set size of this process (Linux), 0 where unknown."""
    return _proc_status("VmRSS")


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far. On Linux VmHWM, since getrusage's
    ru_maxrss starts from the parent's RSS at fork and survives exec."""
    peak = _proc_status("VmHWM")
    if peak:
        return peak
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def benchmark(backend_cls, model_path: Path, threads: int, options: dict, feeds: dict,
              warmup: int = 10, runs: int | None = None, min_time: float | None = None) -> dict:
    """Cold start (load, first inference), steady-state latency and peak RSS of one model."""
    rss_before = rss_bytes()
    t0 = time.perf_counter_ns()
    backend = backend_cls(model_path, threads, options)
    backend.load()
    t1 = time.perf_counter_ns()
    backend.run(feeds)
    t2 = time.perf_counter_ns()
    latency = time_inference(backend.run, feeds, warmup, runs, min_time)
    backend.close()
    return {
        "latency_ms": latency,
        "cold_start_ms": {"load": (t1 - t0) / 1e6, "first_inference": (t2 - t1) / 1e6},
        "memory": {"peak_rss_bytes": peak_rss_bytes(), "rss_before_load_bytes": rss_before},
        "threads": threads,
        "runtime": backend.info,
    }


# --------------------------------------------------------------------------- accuracy
def compare(reference: np.ndarray, actual: np.ndarray) -> dict:
    """Error of ``actual`` against ``reference``: max/mean abs, relative max, cosine."""
    ref = np.asarray(reference, dtype=np.float64).ravel()
    out = np.asarray(actual, dtype=np.float64).ravel()
    if ref.shape != out.shape:
        return {"shape_ok": False, "max_abs": float("inf"), "mean_abs": float("inf"),
                "rel_error": float("inf"), "cosine": 0.0}
    diff = np.abs(ref - out)
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    nr, no = float(np.linalg.norm(ref)), float(np.linalg.norm(out))
    if nr == 0.0 and no == 0.0:
        cosine = 1.0
    elif nr == 0.0 or no == 0.0:
        cosine = 0.0
    else:
        cosine = float(np.dot(ref, out) / (nr * no))
    max_abs = float(diff.max()) if diff.size else 0.0
    return {
        "shape_ok": True, "max_abs": max_abs,
        "mean_abs": float(diff.mean()) if diff.size else 0.0,
        "rel_error": max_abs / scale if scale > 0 else max_abs, "cosine": cosine,
    }


# --------------------------------------------------------------------------- bundle
def load_manifest(bundle: Path) -> dict:
    return json.loads((bundle / MANIFEST).read_text())


def check_files(bundle: Path, manifest: dict) -> list:
    """Files whose sha256 differs from the manifest, or that are missing."""
    bad = []
    for rel, digest in sorted(manifest["files"].items()):
        path = bundle / rel
        if not path.is_file():
            bad.append(f"{rel}: missing")
            continue
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            bad.append(f"{rel}: sha256 mismatch")
    return bad


def backend_options(manifest: dict) -> dict:
    """The runtime's options plus the I/O bindings (runtime names, transposes, quantization)."""
    return {**manifest["runtime"].get("options", {}),
            "io": {"inputs": manifest["inputs"], "outputs": manifest["outputs"]}}


def open_backend(bundle: Path, manifest: dict, threads: int | None = None) -> Backend:
    cls = BACKENDS[manifest["runtime"]["name"]]
    return cls(bundle / manifest["model_file"], threads or manifest["threads"],
               backend_options(manifest))


def batches(arrays: dict, batch: int):
    n = len(next(iter(arrays.values()))) // batch
    for i in range(n):
        yield {k: v[i * batch:(i + 1) * batch] for k, v in arrays.items()}


def run_arrays(backend: Backend, arrays: dict, batch: int, output_names: list) -> dict:
    """Run every batch of ``arrays`` and stack the outputs along the first axis."""
    collected = {name: [] for name in output_names}
    for feeds in batches(arrays, batch):
        result = backend.run(feeds)
        for name in output_names:
            collected[name].append(result[name])
    return {k: np.concatenate(v) for k, v in collected.items()}


def selftest(bundle: Path) -> int:
    manifest = load_manifest(bundle)
    bad = check_files(bundle, manifest)
    if bad:
        print("selftest FAILED: files do not match the manifest: " + "; ".join(bad))
        return 1
    with np.load(bundle / "golden" / "inputs.npz") as z:
        inputs = {k: z[k] for k in z.files}
    with np.load(bundle / "golden" / "outputs.npz") as z:
        expected = {k: z[k] for k in z.files}
    backend = open_backend(bundle, manifest)
    backend.load()
    outputs = run_arrays(backend, inputs, manifest["batch"], list(expected))
    backend.close()
    tol = manifest["selftest"]
    failures = []
    for name, ref in expected.items():
        m = compare(ref, outputs[name])
        ok = m["shape_ok"] and m["cosine"] >= tol["min_cosine"] and \
            m["rel_error"] <= tol["max_rel_error"]
        print(f"  {name}: cosine {m['cosine']:.6f} (>= {tol['min_cosine']}), relative max error "
              f"{m['rel_error']:.3g} (<= {tol['max_rel_error']}), max abs {m['max_abs']:.3g}")
        if not ok:
            failures.append(name)
    info = backend.info
    where = f"{info.get('runtime')} {info.get('version')}"
    if failures:
        print(f"selftest FAILED on {where}: outputs {', '.join(failures)} outside tolerance")
        return 1
    print(f"selftest passed on {where}: {len(manifest['files'])} files verified, "
          f"{len(expected)} output(s) match the reference")
    return 0


def infer(bundle: Path, in_path: Path, out_path: Path | None) -> int:
    manifest = load_manifest(bundle)
    names = [i["name"] for i in manifest["inputs"]]
    if in_path.suffix == ".npy":
        arrays = {names[0]: np.load(in_path, allow_pickle=False)}
    else:
        with np.load(in_path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if k in names}
    missing = [n for n in names if n not in arrays]
    if missing:
        print(f"error: {in_path} has no array for input(s) {', '.join(missing)}", file=sys.stderr)
        return 2
    backend = open_backend(bundle, manifest)
    backend.load()
    outputs = run_arrays(backend, arrays, manifest["batch"],
                         [o["name"] for o in manifest["outputs"]])
    backend.close()
    out_path = out_path or in_path.with_name(in_path.stem + "_outputs.npz")
    np.savez(out_path, **outputs)
    for name, arr in outputs.items():
        print(f"{name}: shape {list(arr.shape)} dtype {arr.dtype}")
    print(f"wrote {out_path}")
    return 0


def bench_bundle(bundle: Path, runs=None, min_time=None, warmup=10, threads=None) -> dict:
    """Benchmark this bundle's model on its first golden input (see :func:`benchmark`)."""
    manifest = load_manifest(bundle)
    with np.load(bundle / "golden" / "inputs.npz") as z:
        feeds = next(batches({k: z[k] for k in z.files}, manifest["batch"]))
    return benchmark(BACKENDS[manifest["runtime"]["name"]], bundle / manifest["model_file"],
                     threads or manifest["threads"], backend_options(manifest), feeds,
                     warmup, runs, min_time)


def bench(bundle: Path, runs, min_time, warmup, threads) -> int:
    result = bench_bundle(bundle, runs, min_time, warmup, threads)
    result["machine"] = {"platform": sys.platform, "machine": os.uname().machine,
                         "cpus": os.cpu_count()}
    print(json.dumps(result, indent=2))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=Path(__file__).resolve().parent,
                        help="bundle directory (default: the folder holding this script)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("selftest", help="verify checksums and golden outputs")
    p_infer = sub.add_parser("infer", help="run the model on an .npz/.npy file")
    p_infer.add_argument("input", type=Path)
    p_infer.add_argument("-o", "--output", type=Path)
    p_bench = sub.add_parser("bench", help="time the model on the golden input, print JSON")
    group = p_bench.add_mutually_exclusive_group()
    group.add_argument("--runs", type=int)
    group.add_argument("--min-time", type=float)
    p_bench.add_argument("--warmup", type=int, default=10)
    p_bench.add_argument("--threads", type=int)
    args = parser.parse_args(argv)
    if args.command == "selftest":
        return selftest(args.bundle)
    if args.command == "infer":
        return infer(args.bundle, args.input, args.output)
    return bench(args.bundle, args.runs, args.min_time, args.warmup, args.threads)


if __name__ == "__main__":
    sys.exit(main())
