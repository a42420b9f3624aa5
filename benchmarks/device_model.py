"""Estimated Raspberry Pi 4 / Pi 5 latency beside published measurements (issue 20).

    python -m benchmarks.device_model [--out DIR] [--quick] [--models a,b] [--fit]
        [--ultralytics-python PY] [--keras-python PY]

1. Builds public architectures offline from their packages' own definitions, with random
   weights (never downloaded weights): YOLO11n, YOLOv8n and YOLO26n at 640x640 from the
   ``ultralytics`` package's model YAMLs, exported by Ultralytics' own ONNX exporter (what its
   benchmarks time), and Keras' MobileNetV2 1.0 at 224x224 (``weights=None``, saved as
   ``.keras``; edgepack imports it itself).
2. ``edgepack build MODEL --profile rpi4,rpi5 --target ort,openvino,tflite --precision fp32
   --device-estimate on``: every cell's instructions are counted on the profile's CPU model
   under qemu (one thread) and turned into time by ``edgepack/cpus.py`` and
   ``targets/cpus/*.toml``. OpenVINO also builds its ``fp32 (device-default)`` variant, which
   runs the CPU plugin's default precision (f16 on the Pi 5's Cortex-A76): the one comparable
   to Ultralytics' Pi 5 OpenVINO figures from before 2026-04 (see the notes per figure).
3. For each published figure (model, board, runtime, threads and precision as the
   publication ran them), prints edgepack's estimate at the publication's thread count, the
   figure, the ratio estimate/published, and the source (URL and date); then the profiling
   cost (seconds of counting per model and CPU) and the totals. The estimate at another
   thread count than the profile's is ``edgepack.cpus.estimate`` on the cell's recorded
   counts (counting is always one thread: a thread count only selects the CPU's speedup),
   exactly what a build with ``--threads N`` records, without counting again.

Calibration: each CPU's ``efficiency`` is fitted once, on the one figure marked ``fit`` below
(``--fit`` prints the value that makes it exact; the CPU file holds it); every other figure is
a check. ``uncertainty`` in the CPU files is the largest relative error of the checks,
|estimate - published| / published = |r - 1| (r = estimate / published), the measure
``edgepack.cpus.interval`` is built on. A figure marked ``outlier`` (one that contradicts its
own table) is shown and counted against the target but left out of ``uncertainty``, with the
reason beside it.

Models, bundles and counts are cached under ``~/.cache/edgepack/bench-device-model`` (the
build uses ``--cache``): a rerun with the same edgepack and models counts nothing again.
Counting YOLO at 640 costs minutes per bundle and CPU on a 2-core host.

The YOLO models need a Python with ``ultralytics`` (its YAMLs and exporter) and torch; it
never touches the network (``YOLO_OFFLINE=1``, ``YOLO_AUTOINSTALL=false``, a private HOME).
One that works (ultralytics 8.4.190, torch 2.13.0 CPU; torchvision is only read for its
version, never imported)::

    python3.11 -m venv ul && ul/bin/pip install torch==2.13.0 onnx numpy pyyaml pillow \\
        psutil requests opencv-python-headless
    ul/bin/pip install --no-deps ultralytics==8.4.190 ultralytics-thop torchvision

MobileNetV2 uses edgepack's TensorFlow toolchain (``edgepack toolchain install tf2onnx-1.17.0``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORMAT = 1  # bump to rebuild the cached models
WARMUP, WINDOWS = 1, 1  # inferences before counting; counted inferences

# --------------------------------------------------------------------------- the models
YOLO_EXPORT = """
import shutil, sys, torch
torch.manual_seed(0)
from ultralytics import YOLO
f = YOLO(sys.argv[1] + ".yaml").export(format="onnx", imgsz=640, batch=1, dynamic=False,
                                       simplify=False, opset=17)
shutil.move(f, sys.argv[2])
import ultralytics
print(ultralytics.__version__)
"""

KERAS_SAVE = """
import sys
import tensorflow as tf
tf.keras.utils.set_random_seed(0)
m = getattr(tf.keras.applications, sys.argv[1])(weights=None, input_shape=(224, 224, 3))
m.save(sys.argv[2])
print(tf.__version__)
"""


@dataclass(frozen=True)
class Model:
    name: str  # as the tables show it
    kind: str  # "ultralytics" or "keras"
    spec: str  # the YAML stem or the keras.applications class
    suffix: str
    what: str


MODELS = {m.name: m for m in (
    Model("YOLO11n", "ultralytics", "yolo11n", ".onnx",
          "ultralytics yolo11n.yaml, 640x640, random weights, Ultralytics' ONNX export"),
    Model("YOLOv8n", "ultralytics", "yolov8n", ".onnx",
          "ultralytics yolov8n.yaml, 640x640, random weights, Ultralytics' ONNX export"),
    Model("YOLO26n", "ultralytics", "yolo26n", ".onnx",
          "ultralytics yolo26n.yaml, 640x640, random weights, Ultralytics' ONNX export"),
    Model("MobileNetV2", "keras", "MobileNetV2", ".keras",
          "keras.applications.MobileNetV2(weights=None), alpha 1.0, 224x224"),
)}
QUICK = ("YOLO11n", "MobileNetV2")


# --------------------------------------------------------------------------- the figures
@dataclass(frozen=True)
class Figure:
    """One published latency, with how the publication ran it."""

    model: str
    profile: str  # rpi4 / rpi5
    target: str  # ort / openvino / tflite
    variant: str | None  # openvino's "device-default" where the publication ran f16
    threads: int
    ran: str  # runtime, precision and threads as the publication ran them
    ms: float
    source: str
    url: str
    date: str
    table: str  # figures of one table are compared for the order of runtimes
    fit: bool = False  # the one figure this CPU's efficiency is fitted on
    outlier: bool = False  # contradicts its own table: shown, left out of the uncertainty
    note: str = ""


UL_DOC = "https://docs.ultralytics.com/guides/raspberry-pi/"
PR = "https://github.com/ultralytics/ultralytics/pull/"
ARM = "https://huggingface.co/Arm/Arm-Runtime-for-YOLO26-on-Raspberry-Pi-5"
XNN = "https://github.com/google/XNNPACK/blob/master/README.md"
F16_NOTE = ("OpenVINO's CPU plugin runs f16 on the A76 by default; Ultralytics pinned f32 on "
            "ARM only from PR #24156 (2026-04-07)")
TFL1_NOTE = ("Ultralytics ran LiteRT/TFLite with one thread until PR #25562 (2026-07-31)")

FIGURES = (
    # Raspberry Pi 5 (Cortex-A76 @ 2.4 GHz)
    Figure("YOLO11n", "rpi5", "ort", None, 4, "ONNX Runtime fp32, 4 threads (default)", 168.082,
           "Ultralytics Raspberry Pi guide, YOLO11n table, 8.3.39 (PR #17910)",
           UL_DOC + " ; " + PR + "17910", "2024-12-02", "ul-8.3.39"),
    Figure("YOLO11n", "rpi5", "openvino", "device-default", 4,
           "OpenVINO, f16 (CPU plugin default on A76), 4 threads", 81.192,
           "Ultralytics Raspberry Pi guide, YOLO11n table, 8.3.39 (PR #17910)",
           UL_DOC + " ; " + PR + "17910", "2024-12-02", "ul-8.3.39", note=F16_NOTE),
    Figure("YOLO11n", "rpi5", "tflite", None, 1, "TF Lite fp32 (XNNPACK), 1 thread", 317.398,
           "Ultralytics Raspberry Pi guide, YOLO11n table, 8.3.39 (PR #17910)",
           UL_DOC + " ; " + PR + "17910", "2024-12-02", "ul-8.3.39", fit=True,
           note="the fit for the Cortex-A76: one-thread fp32 XNNPACK, the same kind as the "
                "A72's fit, from the table quoted in issue 20. " + TFL1_NOTE),
    Figure("YOLO11n", "rpi5", "ort", None, 4, "ONNX Runtime fp32, 4 threads", 191.09,
           "Ultralytics Raspberry Pi guide re-run, 8.3.152 (PR #20990)", PR + "20990",
           "2025-06-09", "ul-8.3.152"),
    Figure("YOLO11n", "rpi5", "openvino", "device-default", 4,
           "OpenVINO, f16 (default on A76), 4 threads", 84.76,
           "Ultralytics Raspberry Pi guide re-run, 8.3.152 (PR #20990)", PR + "20990",
           "2025-06-09", "ul-8.3.152", note=F16_NOTE),
    Figure("YOLO11n", "rpi5", "tflite", None, 1, "TF Lite fp32, 1 thread", 425.77,
           "Ultralytics Raspberry Pi guide re-run, 8.3.152 (PR #20990)", PR + "20990",
           "2025-06-09", "ul-8.3.152", note=TFL1_NOTE),
    Figure("YOLO11n", "rpi5", "ort", None, 4, "ONNX Runtime fp32, 4 threads", 147.20,
           "Ultralytics 'YOLO26 vs YOLO11 (ONNX)' on Pi 5, 8.4.14 (PR #23625)", PR + "23625",
           "2026-02-11", "ul-8.4.14"),
    Figure("YOLOv8n", "rpi5", "ort", None, 4, "ONNX Runtime fp32, 4 threads", 198.69,
           "Ultralytics Raspberry Pi guide, YOLOv8n Pi 5 vs Pi 4 (PR #12164)", PR + "12164",
           "2024-05-11", "ul-v8-pi5"),
    Figure("YOLOv8n", "rpi5", "tflite", None, 1, "TF Lite fp32, 1 thread", 380.67,
           "Ultralytics Raspberry Pi guide, YOLOv8n Pi 5 vs Pi 4 (PR #12164)", PR + "12164",
           "2024-05-11", "ul-v8-pi5", note=TFL1_NOTE),
    Figure("YOLOv8n", "rpi5", "openvino", "device-default", 4,
           "OpenVINO (2024, default precision), 4 threads", 704.70,
           "Ultralytics Raspberry Pi guide, YOLOv8n Pi 5 vs Pi 4 (PR #12164)", PR + "12164",
           "2024-05-11", "ul-v8-pi5", outlier=True,
           note="an outlier, left out of the uncertainty: slower than the same table's Pi 4 "
                "OpenVINO figure (534.93 ms) on a core with twice the SIMD width at a higher "
                "clock, and 8.7x the OpenVINO figures of every later Pi 5 table; no CPU model "
                "can match both"),
    Figure("YOLO26n", "rpi5", "ort", None, 4, "ONNX Runtime fp32, 4 threads", 130.33,
           "Ultralytics Raspberry Pi guide, YOLO26n table, 8.4.1 (PR #23227)", PR + "23227",
           "2026-01-15", "ul-8.4.1"),
    Figure("YOLO26n", "rpi5", "openvino", "device-default", 4,
           "OpenVINO, f16 (default on A76), 4 threads", 70.74,
           "Ultralytics Raspberry Pi guide, YOLO26n table, 8.4.1 (PR #23227)", PR + "23227",
           "2026-01-15", "ul-8.4.1", note=F16_NOTE),
    Figure("YOLO26n", "rpi5", "tflite", None, 1, "TF Lite fp32, 1 thread", 251.41,
           "Ultralytics Raspberry Pi guide, YOLO26n table, 8.4.1 (PR #23227)", PR + "23227",
           "2026-01-15", "ul-8.4.1", note=TFL1_NOTE),
    Figure("YOLO26n", "rpi5", "tflite", None, 1, "LiteRT fp32, 1 thread", 245.5,
           "Ultralytics Raspberry Pi guide, YOLO26n LiteRT before multi-core, 8.4.108 "
           "(PR #25564)", PR + "25564", "2026-07-31", "ul-8.4.108-1t",
           note="one thread stated by the publication (the PR changed exactly that), fp32 "
                "XNNPACK; 8.4.1's independent run gave 251.41 ms"),
    Figure("YOLO26n", "rpi5", "tflite", None, 3, "LiteRT fp32, 3 threads", 123.30,
           "Ultralytics Raspberry Pi guide, YOLO26n LiteRT multi-core, 8.4.108 (PR #25564)",
           PR + "25564", "2026-07-31", "ul-8.4.108",
           note="NUM_THREADS = min(8, cpu_count - 1) = 3 (PR #25562)"),
    Figure("YOLO26n", "rpi5", "openvino", None, 4, "OpenVINO fp32 (f32 pinned), 4 threads",
           102.0, "Arm, 'Arm Runtime for YOLO26 on Raspberry Pi 5' (Ultralytics 8.4.108 "
           "harness)", ARM, "2026 (after 2026-07-29)", "ul-8.4.108"),
    Figure("YOLO26n", "rpi5", "ort", None, 4, "ONNX Runtime fp32, 4 threads", 126.9,
           "Arm, 'Arm Runtime for YOLO26 on Raspberry Pi 5' (Ultralytics 8.4.108 harness)",
           ARM, "2026 (after 2026-07-29)", "ul-8.4.108"),
    # Raspberry Pi 4 (Cortex-A72; the publications do not state 1.5 or 1.8 GHz)
    Figure("YOLOv8n", "rpi4", "tflite", None, 1, "TF Lite fp32, 1 thread", 950.29,
           "Ultralytics Raspberry Pi guide, YOLOv8n Pi 5 vs Pi 4 (PR #12164)", PR + "12164",
           "2024-05-11", "ul-v8-pi4", fit=True,
           note="the fit for the Cortex-A72: its only one-thread fp32 XNNPACK figure, the "
                "same kind as the A76's"),
    Figure("YOLOv8n", "rpi4", "ort", None, 4, "ONNX Runtime fp32, 4 threads", 560.04,
           "Ultralytics Raspberry Pi guide, YOLOv8n Pi 5 vs Pi 4 (PR #12164)", PR + "12164",
           "2024-05-11", "ul-v8-pi4"),
    Figure("YOLOv8n", "rpi4", "openvino", None, 4,
           "OpenVINO, f32 (the A72 has no f16 arithmetic), 4 threads", 534.93,
           "Ultralytics Raspberry Pi guide, YOLOv8n Pi 5 vs Pi 4 (PR #12164)", PR + "12164",
           "2024-05-11", "ul-v8-pi4"),
    Figure("MobileNetV2", "rpi4", "tflite", None, 4,
           "XNNPACK end2end-bench fp32 (TFLite's CPU path), 4 threads, ARM64", 46.0,
           "XNNPACK README, Raspberry Pi table, 'RPi 4 (BCM2711, ARM64)' (commit fd2d933)",
           XNN, "2022-02-08", "xnnpack",
           note="random weights and inputs; XNNPACK's own graph runner, which TFLite's fp32 "
                "CPU path delegates to"),
)


# --------------------------------------------------------------------------- building
def cache_root() -> Path:
    from edgepack.toolchains import cache_dir

    return cache_dir() / "bench-device-model"


def edgepack_env() -> dict:
    """This tree's edgepack in every child (the build spawns its own children)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def make_model(model: Model, folder: Path, ul_python: str | None, keras_python: str) -> Path:
    """The model file, built once (random weights, offline) and cached."""
    path = folder / f"{model.spec}{model.suffix}"
    stamp = folder / f"{model.spec}.json"
    if path.exists() and stamp.exists() and json.loads(stamp.read_text()).get("format") == FORMAT:
        return path
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"tmp-{model.spec}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    start = time.perf_counter()
    if model.kind == "ultralytics":
        if not ul_python:
            raise SystemExit(f"{model.name} needs --ultralytics-python (see this file's doc)")
        env = {**os.environ, "HOME": str(tmp), "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false",
               "YOLO_VERBOSE": "false", "PYTHONDONTWRITEBYTECODE": "1"}
        env.pop("PYTHONPATH", None)
        cmd = [ul_python, "-c", YOLO_EXPORT, model.spec, str(tmp / path.name)]
    else:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(PYTHONDONTWRITEBYTECODE="1", TF_CPP_MIN_LOG_LEVEL="3")
        cmd = [keras_python, "-c", KERAS_SAVE, model.spec, str(tmp / path.name)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp)
    if done.returncode != 0:
        raise SystemExit(f"building {model.name} failed:\n{done.stdout}\n{done.stderr}")
    (tmp / path.name).replace(path)
    version = done.stdout.strip().splitlines()[-1]
    stamp.write_text(json.dumps({"format": FORMAT, "what": model.what, "generator": version,
                                 "seconds": round(time.perf_counter() - start, 1)}))
    shutil.rmtree(tmp, ignore_errors=True)
    return path


def build(model: Model, path: Path, root: Path, rebuild: bool = False
          ) -> tuple[dict, float | None]:
    """``edgepack build`` of one model for both boards (cached): its report and the wall
    time of this run (None when an earlier build of this model file was reused; the
    estimates read only the bundles, which the host's timing does not change). Counting is
    done here afterwards (``count``), so the build itself counts nothing."""
    out = root / "out" / model.spec
    report = out / path.stem / "report.json"
    if not rebuild and report.exists():
        data = json.loads(report.read_text())
        # the same model file (a .keras archive's digest is edgepack's own, not the file's)
        if (data.get("source", {}).get("path") == str(path)
                and report.stat().st_mtime > path.stat().st_mtime
                and all(c["status"] == "ok" for c in data["cells"])):
            data["folder"] = str(report.parent)
            return data, None
    cmd = [sys.executable, "-m", "edgepack", "build", str(path), "--profile", "rpi4,rpi5",
           "--target", "ort,openvino,tflite", "--precision", "fp32", "--device-estimate", "off",
           "--runs", "10", "--timeout", "3600", "--cache", str(root / "build-cache"),
           "-o", str(out)]
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=edgepack_env())
    seconds = time.perf_counter() - start
    (root / f"build-{model.spec}.log").write_text(done.stdout + done.stderr)
    if not report.exists():
        raise SystemExit(f"edgepack build of {model.name} wrote no report (exit "
                         f"{done.returncode}):\n{done.stderr[-3000:]}")
    data = json.loads(report.read_text())
    data["folder"] = str(report.parent)
    return data, seconds


def count(report: dict, cell: dict, root: Path) -> dict:
    """The cell's instructions per inference on its profile's CPU model (one thread, one
    warm-up and one counted inference: counts repeat within 0.5%), cached by the bundle's
    manifest (its files' hashes), the CPU, its features and the counter."""
    from edgepack.cpus import Guest, cpu_model
    from edgepack.emulation import COUNTER_SOURCE, GUEST, SYSROOT, count_instructions
    from edgepack.profiles import load_profile

    profile = load_profile(cell["profile"])
    cpu = cpu_model(profile.cpu)
    features = tuple(profile.features or cpu.features)
    bundle = Path(report["folder"]) / cell["bundle"]
    key = hashlib.sha256(json.dumps([
        (bundle / "manifest.json").read_text(), cpu.qemu, features, WARMUP, WINDOWS,
        hashlib.sha256(COUNTER_SOURCE.read_bytes()).hexdigest(),
        hashlib.sha256(Path(GUEST).read_bytes()).hexdigest()]).encode()).hexdigest()
    cached = root / "counts" / f"{key}.json"
    if cached.exists():
        return json.loads(cached.read_text())
    missing = SYSROOT.counter_missing()
    if missing:  # the table shows the figure as not counted, with this reason
        print(f"cannot count {cell['bundle']} here: {missing}", file=sys.stderr, flush=True)
        return {"error": f"not counted here: {missing}"}
    print(f"counting {cell['bundle']} on {cpu.qemu} ...", file=sys.stderr, flush=True)
    counted = count_instructions(bundle, Guest(cpu, features), 3600.0,
                                 root / "scratch" / cell["bundle"],
                                 root / f"count-{cell['bundle'].replace('/', '-')}.log",
                                 warmup=WARMUP, windows=WINDOWS)
    if "error" in counted:
        return counted  # not cached: tried again next run
    record = {**counted, "clock_ghz": profile.clock_ghz, "cpu_name": cpu.name}
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(record))
    return record


# --------------------------------------------------------------------------- the comparison
def cell_for(report: dict, f: Figure) -> dict | None:
    return next((c for c in report["cells"] if c["precision"] == "fp32" and
                 (c["profile"], c["target"], c.get("variant")) == (f.profile, f.target,
                                                                    f.variant)), None)


def estimate_for(counted: dict, threads: int):
    """The estimate at ``threads`` from one-thread counts (what the build records)."""
    from edgepack.cpus import Counts, cpu_model, estimate

    return estimate(Counts.from_dict(counted["counts"]), cpu_model(counted["cpu_name"]),
                    counted["clock_ghz"], threads)


def compare(reports: dict, counts: dict) -> list[dict]:
    rows = []
    for f in FIGURES:
        if f.model not in reports:
            continue
        cell = cell_for(reports[f.model], f)
        row = {"figure": f, "cell": cell, "estimate": None}
        counted = counts.get((f.model, cell["bundle"])) if cell else None
        if cell is None or cell["status"] != "ok":
            row["why"] = f"cell {cell['status'] if cell else 'missing'}"
        elif "error" in counted:
            row["why"] = counted["error"]
        else:
            row["estimate"] = estimate_for(counted, f.threads)
            row["ratio"] = row["estimate"].p50_ms / f.ms
        rows.append(row)
    return rows


def miss(ratio: float) -> float:
    """The relative error |estimate - published| / published = |r - 1|: an estimate with
    uncertainty u has the figure in its interval (edgepack.cpus.interval) when this <= u."""
    return abs(ratio - 1)


def runtime_order(rows: list[dict]) -> list[tuple[str, str, str, bool]]:
    """Per publication table with several runtimes: the published order and ours."""
    tables: dict[str, list[dict]] = {}
    for r in rows:
        if "ratio" in r:
            tables.setdefault(r["figure"].table, []).append(r)
    out = []
    for table, group in tables.items():
        if len({r["figure"].target for r in group}) < 2:
            continue
        published = _order(group, lambda r: r["figure"].ms)
        ours = _order(group, lambda r: r["estimate"].p50_ms)
        out.append((table, published, ours, published == ours))
    return out


def _order(group: list[dict], key) -> str:
    return " < ".join(_runtime(r["figure"]) for r in sorted(group, key=key))


def _runtime(f: Figure) -> str:
    name = {"ort": "ORT", "openvino": "OpenVINO", "tflite": "TFLite"}[f.target]
    return f"{name} {f.threads}t" + (" f16" if f.variant else "")


def fitted_efficiencies(rows: list[dict]) -> dict[str, tuple[float, float, Figure]]:
    """Per CPU: (the efficiency in its file, the one that makes its fit figure exact, it)."""
    from edgepack.cpus import cpu_model

    out = {}
    for r in rows:
        if r["figure"].fit and "ratio" in r:
            cpu = cpu_model(r["estimate"].cpu)
            out[cpu.name] = (cpu.efficiency, cpu.efficiency * r["ratio"], r["figure"])
    return out


def profiling_cost(counts: dict) -> list[tuple[str, str, int, float, float]]:
    """(model, CPU, bundles counted, seconds of counting, largest instructions/inference)."""
    per: dict[tuple[str, str], list] = {}
    for (model, _), counted in counts.items():
        if "error" in counted:
            continue
        entry = per.setdefault((model, counted["cpu_name"]), [0, 0.0, 0.0])
        entry[0] += 1
        entry[1] += counted["seconds"]
        entry[2] = max(entry[2], counted["counts"]["total"])
    return [(m, cpu, n, s, t) for (m, cpu), (n, s, t) in per.items()]


# --------------------------------------------------------------------------- output
def machine(reports: dict) -> str:
    """The build host the counts were made on (from the reports) and the emulator."""
    host = next(iter(reports.values()))["host"] if reports else {}
    qemu = subprocess.run(["qemu-aarch64", "--version"], capture_output=True, text=True)
    version = qemu.stdout.splitlines()[0] if qemu.returncode == 0 and qemu.stdout else "?"
    return (f"Counted on {host.get('cpu', '?')} ({host.get('machine', '?')}, "
            f"{host.get('cpus', '?')} CPUs, {host.get('os', '?')}, Python "
            f"{host.get('python', '?')}) under {version}, not on any board.")


def markdown(rows, orders, fits, costs, build_seconds, model_info, extra, where="") -> str:
    from edgepack.cpus import MODEL_VERSION, all_cpus

    lines = []
    add = lines.append
    if where:
        add(where)
        add("")
    add("Estimates: instructions counted per inference on the profile's CPU model under qemu "
        f"(one thread), turned into time by edgepack's CPU model (formula v{MODEL_VERSION}) "
        "at the profile's clock (rpi4: Cortex-A72 @ 1.8 GHz, rpi5: Cortex-A76 @ 2.4 GHz), "
        "at the publication's thread count. Ratio = estimate / published.")
    add("")
    for title, fit in (("Fitted on (each CPU's efficiency, once)", True),
                       ("Checked against (not fitted)", False)):
        add(f"**{title}**")
        add("")
        add("| model | board | runtime as published | estimate ms | published ms | ratio "
            "| source (date) |")
        add("|---|---|---|---|---|---|---|")
        for r in rows:
            f = r["figure"]
            if f.fit != fit:
                continue
            board = {"rpi4": "Pi 4", "rpi5": "Pi 5"}[f.profile]
            if "ratio" in r:
                est, ratio = f"{r['estimate'].p50_ms:.1f}", f"{r['ratio']:.2f}"
                if not fit and miss(r["ratio"]) > 0.35:
                    ratio += " ✗"
                if f.outlier:
                    ratio += " (outlier)"
            else:
                est, ratio = f"— ({r.get('why', 'not built')})", "—"
            add(f"| {f.model} | {board} | {f.ran} | {est} | {f.ms:g} | {ratio} | "
                f"[{f.source}]({f.url.split(' ; ')[-1]}) ({f.date}) |")
        add("")
    checks = [r for r in rows if not r["figure"].fit and "ratio" in r]
    if checks:
        add("**Residuals of the checks, per CPU** (error = |estimate − published| / published "
            "= |r − 1|; the uncertainty is the largest error of the checks that are not "
            "outliers):")
        add("")
        add("| CPU | checks | within ±35% | median ratio | largest error (figure) | "
            "uncertainty in its file | outliers (error) |")
        add("|---|---|---|---|---|---|---|")
        from edgepack.cpus import cpu_model

        for cpu in sorted({r["estimate"].cpu for r in checks}):
            mine = [r for r in checks if r["estimate"].cpu == cpu]
            kept = [r for r in mine if not r["figure"].outlier] or mine
            ratios = sorted(r["ratio"] for r in mine)
            worst = max(kept, key=lambda r: miss(r["ratio"]))
            within = sum(1 for r in mine if miss(r["ratio"]) <= 0.35)
            outliers = ", ".join(f"{r['figure'].model} {_runtime(r['figure'])} "
                                 f"{r['figure'].ms:g} ms ({miss(r['ratio']) * 100:.0f}%)"
                                 for r in mine if r["figure"].outlier) or "none"
            add(f"| {cpu} | {len(mine)} | {within}/{len(mine)} | {ratios[len(ratios) // 2]:.2f} "
                f"| {miss(worst['ratio']) * 100:.0f}% ({worst['figure'].model} "
                f"{_runtime(worst['figure'])}, {worst['figure'].ms:g} ms) "
                f"| {cpu_model(cpu).uncertainty * 100:.0f}% | {outliers} |")
        add("")
    if orders:
        add("**Order of runtimes** (fastest first), per publication table:")
        add("")
        add("| table | published | estimated | same |")
        add("|---|---|---|---|")
        outlying = {r["figure"].table for r in rows if r["figure"].outlier}
        for table, published, ours, same in orders:
            if table in outlying:
                table += " (holds an outlier)"
            add(f"| {table} | {published} | {ours} | {'yes' if same else '**no**'} |")
        add("")
    if fits:
        add("**Fits** (efficiency = the share of the issue bound real code reaches):")
        add("")
        for cpu, (now, fitted, f) in fits.items():
            add(f"- {cpu}: efficiency {now:.3f} in its file; {fitted:.3f} makes {f.model} "
                f"{_runtime(f)} on the {f.profile} exact ({f.ms:g} ms, {f.source}, {f.date}).")
        add("")
    add("**CPU models used:** " + "; ".join(
        f"{c.name}: efficiency {c.efficiency:g}, speedup 3t {c.speedup(3):g} / 4t "
        f"{c.speedup(4):g}, ±{c.uncertainty * 100:.0f}%"
        for c in all_cpus().values() if c.name in ("Cortex-A72", "Cortex-A76")))
    add("")
    add("**Profiling cost** (instructions counted under qemu with edgepack's TCG plugin, "
        f"`count_instructions(warmup={WARMUP}, windows={WINDOWS})`: one thread, "
        f"{WARMUP} warm-up and {WINDOWS} counted inference per bundle, start-up included; "
        "edgepack build counts one warm-up and two; only bundles with a published figure are "
        "counted unless --all-cells):")
    add("")
    add("| model | CPU | bundles | counting s | s per bundle | instructions per inference "
        "(largest bundle) |")
    add("|---|---|---|---|---|---|")
    for name, cpu, n, seconds, insns in costs:
        add(f"| {name} | {cpu} | {n} | {seconds:.0f} | {seconds / n:.0f} | "
            f"{insns / 1e9:.2f} G |")
    total = sum(c[3] for c in costs)
    add(f"| **total** | | {sum(c[2] for c in costs)} | {total:.0f} ({total / 60:.0f} min) "
        "| | |")
    add("")
    add("Builds (wall time of this run; a cached rebuild counts nothing): " + ", ".join(
        f"{name} {'reused' if s is None else f'{s:.0f} s'}" for name, s in build_seconds.items())
        + ".")
    add("")
    add("Models (random weights, offline): " + "; ".join(
        f"{name}: {info['what']} ({info['generator']})" for name, info in model_info.items())
        + ".")
    if extra:
        add("")
        add("Other bundles counted (no published figure), at the profile's threads: " + "; ".join(
            f"{name} {c['bundle']} ≈ {estimate_for(k, 4).p50_ms:.0f} ms" for name, c, k in extra
            if "error" not in k) + ".")
    notes = [r["figure"] for r in rows if r["figure"].note]
    if notes:
        add("")
        add("Notes on the figures:")
        add("")
        for f in notes:
            add(f"- {f.model} {_runtime(f)} on the {f.profile}, {f.ms:g} ms: {f.note}.")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="where results.md and results.json go "
                        "(default: the cache folder's results/)")
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    parser.add_argument("--models", help="comma-separated, of: " + ", ".join(MODELS))
    parser.add_argument("--all-cells", action="store_true",
                        help="count every fp32 bundle, not only those with a published figure")
    parser.add_argument("--rebuild", action="store_true",
                        help="build again even when an earlier build of the same model file is "
                        "in the cache folder")
    parser.add_argument("--fit", action="store_true",
                        help="also print each CPU's efficiency fitted on its fit figure")
    parser.add_argument("--ultralytics-python", default=os.environ.get("ULTRALYTICS_PYTHON"),
                        help="a Python with ultralytics and torch (for the YOLO models)")
    parser.add_argument("--keras-python", help="a Python with TensorFlow (default: edgepack's "
                        "tf2onnx toolchain)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from edgepack.toolchains import cache_dir

    names = (args.models.split(",") if args.models else QUICK if args.quick else list(MODELS))
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    keras_python = args.keras_python or str(cache_dir() / "toolchains" / "tf2onnx-1.17.0" /
                                            "bin" / "python")
    root = cache_root()
    out = args.out or root / "results"
    out.mkdir(parents=True, exist_ok=True)
    reports, counts, build_seconds, model_info = {}, {}, {}, {}
    for name in names:
        model = MODELS[name]
        path = make_model(model, root / "models", args.ultralytics_python, keras_python)
        model_info[name] = json.loads((root / "models" / f"{model.spec}.json").read_text())
        reports[name], build_seconds[name] = build(model, path, root, args.rebuild)
        wanted = [c for c in reports[name]["cells"] if c["status"] == "ok" and
                  c["precision"] == "fp32" and (args.all_cells or any(
                      f.model == name and cell_for(reports[name], f) is c for f in FIGURES))]
        for cell in wanted:
            counts[(name, cell["bundle"])] = count(reports[name], cell, root)
    rows = compare(reports, counts)
    extra = [(name, c, counts[(name, c["bundle"])]) for name in names
             for c in reports[name]["cells"] if (name, c["bundle"]) in counts
             and not any(r["cell"] is c for r in rows)]
    text = markdown(rows, runtime_order(rows), fitted_efficiencies(rows) if args.fit else {},
                    profiling_cost(counts), build_seconds, model_info, extra, machine(reports))
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(json.dumps([
        {**r["figure"].__dict__, "estimate_ms": r["estimate"].p50_ms if r["estimate"] else None,
         "ratio": r.get("ratio"), "counts": (counts.get((r["figure"].model, r["cell"]["bundle"]))
                                             if r["cell"] else None)} for r in rows], indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
