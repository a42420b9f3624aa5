"""Bundle layout, manifest, deterministic archives, SHA256SUMS, and checking a bundle.

    <target>-<precision>/
      model file(s)          written by the target's lowering
      manifest.json          what the bundle is, its I/O, and the sha256 of every other file
      run.py                 the runner core (edgepack/device/core.py)
      backend.py             this bundle's runtime backend, and no other
      requirements.txt       the runtime and numpy, pinned to the versions verified on the host
      golden/inputs.npz      reference inputs and FP32 reference outputs for the selftest
      golden/outputs.npz
      README.md

A manifest's checksums prove that a bundle is self-consistent, not that it is authentic:
``SHA256SUMS`` beside the build's archives (or a digest the user passes) is the external
reference that :func:`verify_archive_digest` checks before anything inside is trusted.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import sys
import tarfile
import tempfile
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgepack import __version__, procs
from edgepack.artifact import sha256_file
from edgepack.device import core
from edgepack.errors import BundleError

MANIFEST_SCHEMA = 2  # 2: samples-axis golden data, backend.py, selftest.min_match
RUNNER_SOURCE = Path(core.__file__)
SUMS = "SHA256SUMS"


def write_bundle(bundle: Path, manifest: dict, golden_inputs: dict[str, np.ndarray],
                 golden_outputs: dict[str, np.ndarray], backend_file: Path,
                 requirements: list[str], requirements_header: str) -> dict:
    """Add the shared files to a directory holding a lowered model; return the manifest.

    ``manifest`` holds everything but the edgepack version, schema and file hashes;
    ``golden_outputs`` is already packed (see ``device.core.pack``).
    """
    (bundle / "golden").mkdir(exist_ok=True)
    _save_npz(bundle / "golden" / "inputs.npz", golden_inputs)
    _save_npz(bundle / "golden" / "outputs.npz", golden_outputs)
    shutil.copyfile(RUNNER_SOURCE, bundle / "run.py")
    (bundle / "run.py").chmod(0o755)
    shutil.copyfile(backend_file, bundle / core.BACKEND_FILE)
    (bundle / "requirements.txt").write_text(requirements_header + "\n".join(requirements) + "\n")
    full = {"schema_version": MANIFEST_SCHEMA, "edgepack_version": __version__, **manifest}
    (bundle / "README.md").write_text(bundle_readme(full, requirements))
    full["files"] = {
        p.relative_to(bundle).as_posix(): sha256_file(p)
        for p in sorted(bundle.rglob("*")) if p.is_file() and p.name != core.MANIFEST
    }
    (bundle / core.MANIFEST).write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")
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

{_offline(manifest)}## Run

    python run.py selftest               # checksums + golden outputs within tolerance
    python run.py infer input.npz -o out.npz
    python run.py bench --runs 200       # latency JSON (p50/p90/p99, cold start, peak RSS)

`run.py` needs only the Python standard library, numpy and {rt['name']} (driven by
`backend.py`). An input file holds one sample shaped like the inputs below, or many with a
leading samples axis (`[N, *shape]`).

## Inputs and outputs

| | name | dtype | shape | layout |
|---|---|---|---|---|
{io_lines}

{manifest['threads']} thread(s) by default (`--threads` changes it).
""" + "".join(f"\n- {note}" for note in manifest.get("notes", [])) + "\n"


def _offline(manifest: dict) -> str:
    """The bundle README's offline-install section (bundles built with --vendor-wheels)."""
    wheels = manifest.get("wheels")
    if not wheels:
        return ""
    prof = manifest["profile"]
    return f"""## Install with no network

`wheels/` holds all {len(wheels)} wheels the requirements need, dependencies included, for
{prof['arch']}, glibc {prof['glibc']} and CPython {prof['python']}:

    python{prof['python']} -m venv .venv && . .venv/bin/activate
    pip install --no-index --find-links wheels -r requirements.txt

"""


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
            if "__pycache__" in path.parts:
                continue
            info = entry(path)
            if info.isdir():
                tar.addfile(info)
            else:
                with open(path, "rb") as f:
                    tar.addfile(info, f)
    tmp.replace(archive)
    return sha256_file(archive)


# --------------------------------------------------------------------------- SHA256SUMS
def write_sums(folder: Path, archives: list[str]) -> None:
    """``folder/SHA256SUMS`` for these archive paths (relative to ``folder``), sha256sum's
    format, so ``sha256sum -c SHA256SUMS`` works too."""
    lines = [f"{sha256_file(folder / rel)}  {rel}\n" for rel in sorted(archives)]
    tmp = folder / f".{SUMS}.part"
    tmp.write_text("".join(lines))
    tmp.replace(folder / SUMS)


def read_sums(path: Path) -> dict[str, str]:
    """Relative path -> sha256 from a SHA256SUMS file."""
    sums = {}
    for line in path.read_text().splitlines():
        digest, _, rel = line.partition("  ")
        if len(digest) == 64 and rel:
            sums[rel.strip().removeprefix("*")] = digest.lower()
    return sums


@dataclass(frozen=True)
class Authenticity:
    """What an archive's digest was checked against, and how that went."""

    status: str  # "matched", "mismatch" or "unchecked" (no external digest found)
    how: str  # where the digest came from and what was found


def verify_archive_digest(archive: Path, sha256: str | None = None) -> Authenticity:
    """Check an archive against ``sha256`` or the nearest ``SHA256SUMS`` (its own folder or
    the one above: ``dist/<model>/SHA256SUMS`` lists ``<profile>/<cell>.tar.gz``). A
    SHA256SUMS that does not list the archive is a mismatch: it is not one of that build's."""
    actual = sha256_file(archive)
    if sha256 is not None:
        if actual != sha256.strip().lower():
            return Authenticity("mismatch", f"its sha256 is {actual}, not the --sha256 given")
        return Authenticity("matched", "--sha256")
    for folder in (archive.parent, archive.parent.parent):
        sums_file = folder / SUMS
        if not sums_file.is_file():
            continue
        rel = archive.resolve().relative_to(folder.resolve()).as_posix()
        listed = read_sums(sums_file).get(rel)
        if listed is None:
            return Authenticity("mismatch", f"{sums_file} does not list {rel}: it is not one "
                                "of that build's archives (pass --sha256 HEX to check it)")
        if listed != actual:
            return Authenticity("mismatch", f"{sums_file} lists sha256 {listed[:16]}…, the "
                                f"archive's is {actual[:16]}… (changed since the build)")
        return Authenticity("matched", str(sums_file))
    return Authenticity("unchecked", f"no {SUMS} beside it and no --sha256")


@contextmanager
def opened_bundle(path: Path):
    """Yield a bundle directory for ``path``: the directory itself, or an archive extracted
    to a temporary directory. BundleError when it is neither."""
    if path.is_dir():
        if not (path / core.MANIFEST).is_file():
            raise BundleError(f"{path} is not an edgepack bundle: it has no {core.MANIFEST}")
        yield path
        return
    if not path.is_file():
        raise BundleError(f"bundle {path} does not exist")
    with tempfile.TemporaryDirectory(prefix="edgepack-verify-") as tmp:
        try:
            with tarfile.open(path, "r:gz") as tar:
                # the "data" filter refuses absolute paths, '..', device files and links
                # that leave the folder
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError, EOFError) as e:
            raise BundleError(f"{path} is not a readable .tar.gz bundle archive ({e})") from None
        found = [m.parent for m in Path(tmp).glob(f"*/{core.MANIFEST}")]
        if len(found) != 1:
            raise BundleError(f"{path} does not hold exactly one edgepack bundle")
        yield found[0]


def check_bundle(bundle: Path, timeout: float) -> tuple[bool, str]:
    """Check an opened bundle's checksums and run its own ``run.py selftest`` (through the
    process door, with a timeout). Returns (passed, the selftest's output or the reason)."""
    try:
        manifest = core.load_manifest(bundle)
    except core.BundleProblem as e:
        raise BundleError(str(e)) from None
    bad = core.check_files(bundle, manifest)
    if bad:
        return False, "files do not match the manifest: " + "; ".join(bad)
    done = procs.run([sys.executable, bundle / "run.py", "selftest"], what="the selftest",
                     timeout=timeout, capture=True, cwd=bundle)
    lines = [ln for ln in done.output.splitlines() if ln.strip()]
    text = "\n".join(lines)
    if not done.ok and not any(ln.startswith("selftest FAILED") for ln in lines):
        text = (text + "\n" if text else "") + f"selftest FAILED: {done.reason}"
    return done.ok, text
