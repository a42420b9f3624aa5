"""How much does edgepack's benchmark harness add on top of each runtime's own timing?

Builds the sample models for the x86-64 profile, then times every verified bundle twice:
edgepack's p50 (from report.json: a fresh child process, the shared harness in run.py) and
the reference for that runtime on the same model file, input and thread count:

* ort: a bare ``InferenceSession.run`` loop in a fresh process (ONNX Runtime's pip wheel has
  no perf tool);
* openvino: OpenVINO's own ``benchmark_app`` (sync API, 1 stream, same threads and
  inference precision);
* tflite: LiteRT's own ``litert-benchmark`` (same threads; it prints milliseconds with two
  decimals, so sub-0.1 ms models give coarse ratios: the generated ``convnet`` is there
  for a millisecond-scale workload).

Prints a Markdown table with the ratio edgepack p50 / reference median. Run: ``make bench``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_models"

BARE_ORT = """
import sys, time, numpy as np, onnxruntime as ort
model, threads, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
so = ort.SessionOptions(); so.intra_op_num_threads = threads; so.inter_op_num_threads = 1
s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
with np.load(sys.argv[4]) as z:
    feeds = {k: z[k][:1] for k in z.files}
for _ in range(10):
    s.run(None, feeds)
t = []
for _ in range(runs):
    t0 = time.perf_counter_ns(); s.run(None, feeds); t.append(time.perf_counter_ns() - t0)
print(sorted(t)[len(t) // 2] / 1e6)
"""


def bare_ort(bundle: Path, threads: int, runs: int) -> float:
    out = subprocess.run([sys.executable, "-c", BARE_ORT, str(bundle / "model.ort"), str(threads),
                          str(runs), str(bundle / "golden" / "inputs.npz")],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def benchmark_app(bundle: Path, threads: int, runs: int) -> float:
    manifest = json.loads((bundle / "manifest.json").read_text())
    cmd = [str(Path(sys.executable).parent / "benchmark_app"), "-m", str(bundle / "model.xml"),
           "-d", "CPU", "-hint", "none", "-nstreams", "1", "-api", "sync",
           "-nthreads", str(threads), "-niter", str(runs)]
    hint = manifest["runtime"]["options"].get("openvino_config", {}).get(
        "INFERENCE_PRECISION_HINT")
    if hint:
        cmd += ["-infer_precision", hint]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    value, unit = re.search(r"Median:\s+([\d.]+)\s+(ms|us)", out).groups()
    return float(value) / (1000.0 if unit == "us" else 1.0)


def litert_benchmark(bundle: Path, threads: int, runs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        subprocess.run([str(Path(sys.executable).parent / "litert-benchmark"), "--model",
                        str(bundle / "model.tflite"), "--num_threads", str(threads),
                        "--num_runs", str(runs), "--warmup_runs", "10",
                        "--result_json", str(result)], capture_output=True, check=True)
        return json.loads(result.read_text())["latency"]["median_ms"]


REFERENCES = {"ort": ("bare InferenceSession.run", bare_ort),
              "openvino": ("benchmark_app", benchmark_app),
              "tflite": ("litert-benchmark", litert_benchmark)}


def make_convnet(path: Path) -> Path:
    """A millisecond-scale CNN (3x128x128, five 3x3 convs, random weights, seeded). Its
    output is named `features`, not logits: random weights make no classifier."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, prev, cin = [], [], "input", 3
    for i, (cout, stride) in enumerate([(32, 2), (32, 1), (64, 2), (64, 1), (128, 2)]):
        w = (rng.standard_normal((cout, cin, 3, 3)) / np.sqrt(cin * 9)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"),
                  numpy_helper.from_array(np.zeros(cout, np.float32), f"b{i}")]
        nodes += [helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"],
                                   pads=[1, 1, 1, 1], strides=[stride, stride]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        prev, cin = f"r{i}", cout
    fc = (rng.standard_normal((cin, 10)) / np.sqrt(cin)).astype(np.float32)
    inits.append(numpy_helper.from_array(fc, "fc"))
    nodes += [helper.make_node("GlobalAveragePool", [prev], ["gap"]),
              helper.make_node("Flatten", ["gap"], ["flat"]),
              helper.make_node("MatMul", ["flat", "fc"], ["features"])]
    graph = helper.make_graph(
        nodes, "convnet", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                         [1, 3, 128, 128])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--targets", default="ort,openvino,tflite")
    parser.add_argument("--models", default="digits_cnn,mobilenet_digits,convnet")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            out = Path(tmp) / "dist"
            if model == "convnet":  # synthetic data: only timing matters here
                source = make_convnet(Path(tmp) / "convnet.onnx")
                data = ["--allow-synthetic-calibration"]
            else:
                source = SAMPLES / f"{model}.onnx"
                data = ["--eval", str(SAMPLES / f"{model}.npz"),
                        "--calib", str(SAMPLES / f"{model}_calib.npz")]
            subprocess.run(
                [sys.executable, "-m", "edgepack", "build", str(source), "--profile", "x86-64",
                 "--target", args.targets, *data, "--runs", str(args.runs), "-o", str(out)],
                check=False, capture_output=True)
            report = json.loads((out / model / "report.json").read_text())
            for cell in report["cells"]:
                if cell["status"] != "ok":
                    rows.append((model, cell, None, None, cell["status"]))
                    continue
                tool, measure = REFERENCES[cell["target"]]
                try:
                    ref = measure(out / model / cell["bundle"], cell["latency"]["threads"],
                                  args.runs)
                except subprocess.CalledProcessError as e:
                    rows.append((model, cell, None, None, f"{tool} failed (exit {e.returncode})"))
                    continue
                rows.append((model, cell, cell["latency"]["p50"], ref, tool))
    host = report["host"]
    print(f"Host: {host['cpu']} ({host['machine']}, {host['cpus']} CPUs), {host['os']}; "
          f"{args.runs} runs after 10 warm-up, threads from the x86-64 profile.\n")
    print("| model | target | precision | edgepack p50 ms | reference median ms | ratio "
          "| reference |")
    print("|---|---|---|---|---|---|---|")
    for model, cell, p50, ref, tool in rows:
        name = cell["precision"] + (f" ({cell['variant']})" if cell.get("variant") else "")
        if p50 is None:
            print(f"| {model} | {cell['target']} | {name} | – | – | – | {tool} |")
            continue
        ratio = f"{p50 / ref:.2f}" if ref else "–"
        print(f"| {model} | {cell['target']} | {name} | {p50:.4f} | {ref:.4f} | {ratio} | "
              f"{tool} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
