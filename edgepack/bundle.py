"""Bundle layout, manifest, deterministic archives, and checking a bundle.

    <target>-<precision>/
      model file(s)          written by the target's lowering
      manifest.json          what the bundle is, its I/O, and the sha256 of every other file
      run.py                 the device runner (edgepack/device/runner.py)
      requirements.txt       the runtime and numpy, pinned to the versions verified on the host
      golden/inputs.npz      reference inputs and FP32 reference outputs for the selftest
      golden/outputs.npz
      README.md
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from edgepack import __version__
from edgepack.artifact import sha256_file
from edgepack.device import runner as device
from edgepack.errors import BundleError

MANIFEST_SCHEMA = 1
RUNNER_SOURCE = Path(device.__file__)


def write_bundle(bundle: Path, manifest: dict, golden_inputs: dict[str, np.ndarray],
                 golden_outputs: dict[str, np.ndarray], requirements: list[str],
                 requirements_header: str) -> dict:
    """Add the shared files to a directory holding a lowered model; return the manifest.

    ``manifest`` holds everything but the edgepack version, schema and file hashes.
    """
    (bundle / "golden").mkdir(exist_ok=True)
    _save_npz(bundle / "golden" / "inputs.npz", golden_inputs)
    _save_npz(bundle / "golden" / "outputs.npz", golden_outputs)
    shutil.copyfile(RUNNER_SOURCE, bundle / "run.py")
    (bundle / "run.py").chmod(0o755)
    (bundle / "requirements.txt").write_text(requirements_header + "\n".join(requirements) + "\n")
    full = {"schema_version": MANIFEST_SCHEMA, "edgepack_version": __version__, **manifest}
    (bundle / "README.md").write_text(bundle_readme(full, requirements))
    full["files"] = {
        p.relative_to(bundle).as_posix(): sha256_file(p)
        for p in sorted(bundle.rglob("*")) if p.is_file() and p.name != device.MANIFEST
    }
    (bundle / device.MANIFEST).write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")
    return full


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez with fixed zip timestamps, so identical arrays give identical bytes."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    # numpy's zip entries carry the current time; rewrite them with a fixed one
    buf.seek(0)
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as dst:
        for info in sorted(src.infolist(), key=lambda i: i.filename):
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.external_attr = 0o644 << 16
            dst.writestr(fixed, src.read(info.filename))


def bundle_readme(manifest: dict, requirements: list[str]) -> str:
    prof = manifest["profile"]
    io_lines = "\n".join(
        f"| {kind} | `{t['name']}` | {t['dtype']} | {t['shape']} | {t.get('layout') or '-'} |"
        for kind, key in (("input", "inputs"), ("output", "outputs")) for t in manifest[key]
    )
    rt = manifest["runtime"]
    title = f"{manifest['source']['file']} — {manifest['target']} {manifest['precision']}"
    return f"""# {title} for {prof['name']}

Built by edgepack {manifest['edgepack_version']} for **{prof['description']}**
({prof['arch']}, {prof['os']}, Python {prof['python']}, glibc {prof['glibc']}).
Verified against the FP32 reference on the build host with {rt['name']} {rt['verified_version']}.

## Install on the device

    python{prof['python']} -m venv .venv && . .venv/bin/activate
    pip install -r requirements.txt      # {', '.join(requirements)}

## Run

    python run.py selftest               # checksums + golden outputs within tolerance
    python run.py infer input.npz -o out.npz
    python run.py bench --runs 200       # latency JSON (p50/p90/p99, cold start, peak RSS)

`run.py` needs only the Python standard library, numpy and {rt['name']}.

## Inputs and outputs

| | name | dtype | shape | layout |
|---|---|---|---|---|
{io_lines}

Batch size {manifest['batch']}; {manifest['threads']} thread(s) by default (`--threads` changes it).
""" + "".join(f"\n- {note}" for note in manifest.get("notes", [])) + "\n"


def write_archive(bundle: Path, archive: Path) -> str:
    """Pack ``bundle`` into a byte-reproducible ``.tar.gz``; return its sha256.

    Entries are sorted, with mtime 0, owner root:root and modes 0644/0755, and the gzip
    header carries no name or time.
    """
    def entry(path: Path) -> tarfile.TarInfo:
        info = tarfile.TarInfo(f"{bundle.name}/{path.relative_to(bundle).as_posix()}"
                               if path != bundle else bundle.name)
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        if path.is_dir():
            info.type, info.mode = tarfile.DIRTYPE, 0o755
        else:
            info.size = path.stat().st_size
            info.mode = 0o755 if path.name == "run.py" else 0o644
        return info

    tmp = archive.with_name(archive.name + ".part")
    with (open(tmp, "wb") as raw,
          gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
          tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar):
        for path in [bundle, *sorted(bundle.rglob("*"))]:
            info = entry(path)
            if info.isdir():
                tar.addfile(info)
            else:
                with open(path, "rb") as f:
                    tar.addfile(info, f)
    tmp.replace(archive)
    return sha256_file(archive)


@contextmanager
def opened_bundle(path: Path):
    """Yield a bundle directory for ``path``: the directory itself, or an archive extracted
    to a temporary directory. BundleError when it is neither."""
    if path.is_dir():
        if not (path / device.MANIFEST).is_file():
            raise BundleError(f"{path} is not an edgepack bundle: it has no {device.MANIFEST}")
        yield path
        return
    if not path.is_file():
        raise BundleError(f"bundle {path} does not exist")
    with tempfile.TemporaryDirectory(prefix="edgepack-verify-") as tmp:
        try:
            with tarfile.open(path, "r:gz") as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError, EOFError) as e:
            raise BundleError(f"{path} is not a readable .tar.gz bundle archive ({e})") from None
        found = [m.parent for m in Path(tmp).glob(f"*/{device.MANIFEST}")]
        if len(found) != 1:
            raise BundleError(f"{path} does not hold exactly one edgepack bundle")
        yield found[0]


def check_bundle(path: Path, timeout: float = 600.0) -> tuple[bool, str]:
    """Check a bundle's checksums and run its own ``run.py selftest`` with this Python.

    Returns (passed, the selftest's output). BundleError if it is not a bundle at all.
    """
    with opened_bundle(path) as bundle:
        try:
            manifest = device.load_manifest(bundle)
            files = manifest["files"]
        except (json.JSONDecodeError, KeyError) as e:
            raise BundleError(f"{bundle / device.MANIFEST} is not a valid manifest ({e})") from None
        bad = device.check_files(bundle, {"files": files})
        if bad:
            return False, "files do not match the manifest: " + "; ".join(bad)
        proc = subprocess.run([sys.executable, str(bundle / "run.py"), "selftest"],
                              capture_output=True, text=True, timeout=timeout, cwd=bundle)
        return proc.returncode == 0, (proc.stdout + proc.stderr).strip()
