"""Run a bundle's model for the instruction counter (edgepack/toolchains/insn_count.c) on the
emulated device: ``python count.py BUNDLE WARMUP WINDOWS``.

It imports the bundle's own ``run.py``, loads the model with one inference thread, runs the
golden input WARMUP times, then WINDOWS more times, each bracketed by the counter's markers
(``lseek(-1, MARK, 0)``: a failing syscall with no other effect), so that start-up, loading
and warm-up are left out of the counts. Standard library and the bundle's runtime only.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

BEGIN, END = 0x45505801, 0x45505802


def mark(value: int) -> None:
    try:
        os.lseek(-1, value, 0)
    except OSError:
        pass


def main(argv: list[str]) -> int:
    bundle, warmup, windows = Path(argv[0]), int(argv[1]), int(argv[2])
    spec = importlib.util.spec_from_file_location("edgepack_bundle_run", bundle / "run.py")
    run = importlib.util.module_from_spec(spec)
    sys.dont_write_bytecode = True
    spec.loader.exec_module(run)
    manifest = run.load_manifest(bundle)
    golden = run.load_npz(bundle / "golden" / "inputs.npz")
    feeds = {name: values[0] for name, values in golden.items()}
    with run.open_model(bundle, manifest, 1) as model:
        for _ in range(warmup):
            model.backend.run(feeds)
        for _ in range(windows):
            mark(BEGIN)
            model.backend.run(feeds)
            mark(END)
    print(f"counted {windows} inference(s) after {warmup} warm-up run(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
