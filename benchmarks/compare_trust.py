"""Can `edgepack report compare` be trusted on a shared runner? False alarms and misses.

    python -m benchmarks.compare_trust [--reruns 10] [--out DIR]

Builds a 5-layer MLP once as the baseline, then N unchanged rebuilds and N rebuilds of a
6-layer MLP with the same weights (20% more work, the same size), each a default
single-round build, and compares every rebuild with the baseline:

- rpi5 (device estimates: instructions counted on the Cortex-A76 model);
- x86-64 with one benchmark process (the host's clock only);
- x86-64 with --bench-rounds 3 (host time, with the noise between processes known).

A false alarm is an unchanged rebuild flagged as a regression; a miss is a 20%-more-work
rebuild not flagged. Prints the counts and the time each kind of build took.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.helpers.models import stacked_mlp

KINDS = {
    "rpi5, device estimate": ["--profile", "rpi5"],
    "x86-64, one process": ["--profile", "x86-64"],
    "x86-64, --bench-rounds 3": ["--profile", "x86-64", "--bench-rounds", "3"],
}


def edgepack(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgepack", *map(str, args)],
                          capture_output=True, text=True)


def build(model: Path, out: Path, extra: list[str]) -> float:
    start = time.monotonic()
    r = edgepack("build", model, "--target", "ort", "--precision", "fp32", *extra, "-o", out)
    if r.returncode != 0:
        raise SystemExit(f"build failed: {r.stderr.strip().splitlines()[-1:]}")
    return time.monotonic() - start


def regressed(old: Path, new: Path) -> tuple[bool, str]:
    r = edgepack("report", "compare", old, new, "--json")
    deltas = json.loads(r.stdout)["deltas"]
    flagged = [d["metric"] for d in deltas if d["regression"]]
    speed = next((d for d in deltas if d["metric"].startswith(("instructions", "host p50"))),
                 {})
    return bool(flagged), f"{speed.get('metric', '?')} {speed.get('change', '?')}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reruns", type=int, default=10)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="compare-trust-"))
    models = {}
    for name, layers in (("same", 5), ("more", 6)):
        (out / name).mkdir(parents=True, exist_ok=True)
        models[name] = stacked_mlp(out / name / "mlp.onnx", layers)
    print(f"# report compare on a {sys.platform} host, {args.reruns} reruns per case")
    print("| builds | false alarms (unchanged flagged) | misses (+20% work not flagged) | "
          "s per build | changes seen (unchanged; +20%) |")
    print("|---|---|---|---|---|")
    for kind, extra in KINDS.items():
        slug = kind.split(",")[0] + str(len(extra))
        base = out / slug / "base"
        seconds = [build(models["same"], base, extra)]
        alarms, misses, seen = 0, 0, {"same": [], "more": []}
        for i in range(args.reruns):
            for name in ("same", "more"):
                folder = out / slug / f"{name}{i}"
                seconds.append(build(models[name], folder, extra))
                flagged, change = regressed(base, folder)
                seen[name].append(change.split()[-1])
                alarms += flagged and name == "same"
                misses += (not flagged) and name == "more"
        print(f"| {kind} | {alarms}/{args.reruns} | {misses}/{args.reruns} | "
              f"{sum(seconds) / len(seconds):.0f} | {', '.join(seen['same'][:4])}…; "
              f"{', '.join(seen['more'][:4])}… |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
