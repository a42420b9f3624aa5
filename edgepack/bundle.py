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
:func:`opened_bundle` is the one gate every command that opens a bundle (verify, bench,
their --emulate and --remote) goes through before the bundle's own code runs.
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
from pathlib import Path, PurePosixPath

import numpy as np

from edgepack import procs
from edgepack.artifact import sha256_file
from edgepack.device import core
from edgepack.errors import BundleError, CheckFailed, UsageError
from edgepack.version import __version__

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
leading samples axis (`[N, *shape]`).{_media_infer(manifest)}

## From your own Python code

{_python_example(manifest)}

## Inputs and outputs

| | name | dtype | shape | layout |
|---|---|---|---|---|
{io_lines}

{manifest['threads']} thread(s) by default (`--threads` changes it).
""" + "".join(f"\n- {note}" for note in manifest.get("notes", [])) + "\n"


def _media_infer(manifest: dict) -> str:
    """What the bundle README says about ``run.py infer`` on an image or WAV file."""
    prep = manifest.get("preprocessing") or {}
    if prep.get("kind") == "image":
        return ("\n\n    python run.py infer photo.jpg         # an image, preprocessed as at "
                "build time\n\nThe image is resized, cropped, scaled and laid out as "
                "`manifest.json`'s\n`preprocessing` says (numpy); decoding it needs Pillow "
                "(`pip install Pillow`).")
    if prep.get("kind") == "audio":
        return ("\n\n    python run.py infer clip.wav          # a PCM WAV file at "
                f"{prep.get('sample_rate')} Hz, preprocessed as at build time")
    return ""


def _python_example(manifest: dict) -> str:
    """Ten lines calling the bundle's model from the user's own code on the board."""
    feeds = ", ".join(f'"{t["name"]}": np.zeros({tuple(t["shape"])}, np.{t["dtype"]})'
                      for t in manifest["inputs"])
    first = manifest["outputs"][0]["name"] if manifest["outputs"] else "output"
    return f"""    import sys
    import numpy as np
    sys.path.insert(0, "/path/to/this/bundle")  # the folder holding run.py
    import run  # this bundle's runner: the same code `run.py selftest` uses

    bundle = run.Path(run.__file__).parent
    manifest = run.load_manifest(bundle)
    with run.open_model(bundle, manifest) as model:  # loads {manifest["model_file"]}
        outputs = model.infer({{{feeds}}})
    print(outputs["{first}"].shape)

`model.infer` checks each input's dtype and shape and returns every output by name; keep the
model open and call `infer` for each sample (opening it loads the runtime)."""


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
    """Relative path -> sha256 from a SHA256SUMS file; BundleError when it is not text."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BundleError(f"{path} is not a {SUMS} file (it is not text); use the one the "
                          "build wrote, or pass --sha256 HEX") from None
    except OSError as e:
        raise BundleError(f"{path} cannot be read ({e.strerror or e})") from None
    sums = {}
    for line in text.splitlines():
        digest, _, rel = line.partition("  ")
        if _is_sha256(digest) and rel:
            sums[rel.strip().removeprefix("*")] = digest.lower()
    return sums


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and set(text.lower()) <= set("0123456789abcdef")


@dataclass(frozen=True)
class Authenticity:
    """What an archive's digest was checked against, and how that went."""

    status: str  # "matched", "mismatch" or "unchecked" (no external digest found)
    how: str  # where the digest came from and what was found


def verify_archive_digest(archive: Path, sha256: str | None = None) -> Authenticity:
    """Check an archive against ``sha256`` or the nearest ``SHA256SUMS`` (its own folder or
    the one above: ``dist/<model>/SHA256SUMS`` lists ``<profile>/<cell>.tar.gz``). A
    SHA256SUMS that does not list the archive is a mismatch: it is not one of that build's.
    UsageError for a ``sha256`` that is not one; BundleError for a SHA256SUMS that is not text."""
    if sha256 is not None and not _is_sha256(sha256.strip()):
        raise UsageError(f"--sha256 {sha256!r} is not a sha256 digest (64 hex digits)")
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
    return Authenticity("unchecked", f"no external digest (no {SUMS} beside it, no --sha256)")


# --------------------------------------------------------------------------- the archive gate
@dataclass(frozen=True)
class Opened:
    """A bundle that passed the archive gate: its folder (the user's, or the archive
    extracted into a temporary one), its manifest, and what its archive was checked against."""

    folder: Path
    manifest: dict
    authenticity: Authenticity


@contextmanager
def opened_bundle(path: Path, sha256: str | None = None, require_digest: bool = False):
    """The archive gate every command that opens a bundle goes through, in this order: the
    archive's digest (``sha256`` or the SHA256SUMS beside it; with ``require_digest`` an
    archive with neither is refused), safe extraction (:func:`extract_bundle`), then the
    manifest (its field types) and its checksums over every file (none missing, changed,
    unlisted or outside the bundle). Only then is the bundle's own code run by the caller.

    Yields :class:`Opened`. CheckFailed (exit 1) when the bundle is not what it should be;
    BundleError/UsageError (exit 2) when it cannot be read, or for bad usage.
    """
    if path.is_dir():
        if sha256 is not None:
            raise UsageError("--sha256 checks an archive (.tar.gz), not a bundle folder")
        if not (path / core.MANIFEST).is_file():
            raise BundleError(f"{path} is not an edgepack bundle: it has no {core.MANIFEST}")
        unchecked = Authenticity("unchecked", "a bundle folder has no external digest")
        yield Opened(path.absolute(), checked_manifest(path, path), unchecked)
        return
    if not path.is_file():
        raise BundleError(f"bundle {path} does not exist")
    auth = verify_archive_digest(path, sha256)
    if auth.status == "mismatch":
        raise CheckFailed(f"{path}: verification FAILED: {auth.how}")
    if auth.status == "unchecked" and require_digest:
        raise BundleError(f"{path}: {auth.how}, so nothing shows it is the archive edgepack "
                          f"built; keep the build's {SUMS} beside it, pass --sha256 HEX, or "
                          "pass --trust-unverified to run its code anyway")
    with tempfile.TemporaryDirectory(prefix="edgepack-bundle-") as tmp:
        folder = extract_bundle(path, Path(tmp))
        yield Opened(folder, checked_manifest(path, folder), auth)


def extract_bundle(archive: Path, into: Path) -> Path:
    """Extract a bundle archive into ``into``; return the bundle's folder. Every member is
    checked first: a relative path under the one top folder, a regular file or a folder.
    Anything else is refused, never stripped or skipped: CheckFailed naming the member, with
    nothing extracted. BundleError when it is not a readable .tar.gz bundle archive."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            top = _bundle_folder(archive, members)
            tar.extractall(into, members=members, filter="data")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise BundleError(f"{archive} is not a readable .tar.gz bundle archive ({e})") from None
    return into / top


def _bundle_folder(archive: Path, members: list[tarfile.TarInfo]) -> str:
    """The archive's one top folder, after checking every member (see extract_bundle)."""
    refused = f"{archive}: verification FAILED: the archive"
    for m in members:
        why = member_problem(m)
        if why:
            raise CheckFailed(f"{refused} member '{m.name}' {why}; a bundle archive holds only "
                              "files and folders under one folder (nothing was extracted)")
    tops = sorted({m.name.split("/")[0] for m in members})
    if len(tops) != 1 or any(m.name == tops[0] and not m.isdir() for m in members):
        raise CheckFailed(f"{refused} holds {', '.join(tops[:3]) or 'nothing'} at its top, "
                          "not one bundle folder")
    if not any(m.name == f"{tops[0]}/{core.MANIFEST}" and m.isreg() for m in members):
        raise BundleError(f"{archive} is not an edgepack bundle archive: "
                          f"{tops[0]}/{core.MANIFEST} is missing")
    return tops[0]


def member_problem(m: tarfile.TarInfo) -> str | None:
    """Why an archive member may not be extracted (an absolute or '..' path, a link, a
    special file), or None."""
    path = PurePosixPath(m.name)
    if path.is_absolute():
        return "is an absolute path"
    if ".." in path.parts:
        return "climbs out of its folder ('..')"
    if m.name in ("", ".") or "\\" in m.name or path.as_posix() != m.name:
        return "is not a plain relative path"
    if m.issym():
        return f"is a symbolic link (to '{m.linkname}')"
    if m.islnk():
        return f"is a hard link (to '{m.linkname}')"
    if m.isfifo():
        return "is a FIFO"
    if m.ischr() or m.isblk():
        return "is a device file"
    if not (m.isreg() or m.isdir()):
        return "is not a regular file or folder"
    return None


def checked_manifest(label: Path, folder: Path) -> dict:
    """The manifest of the bundle in ``folder`` once every file matches it. ``label`` (what
    the user named) starts every message: never a temporary folder."""
    try:
        manifest = core.load_manifest(folder)
    except core.BundleProblem as e:
        raise BundleError(f"{label}: {e}") from None
    bad = core.check_files(folder, manifest)
    if bad:
        raise CheckFailed(f"{label}: verification FAILED: files do not match the manifest: "
                          + "; ".join(bad))
    return manifest


def check_bundle(bundle: Path, timeout: float) -> tuple[bool, str]:
    """Check a bundle folder's checksums and run its own ``run.py selftest`` (through the
    process door, with a timeout). Returns (passed, the selftest's output or the reason)."""
    try:
        manifest = core.load_manifest(bundle)
    except core.BundleProblem as e:
        raise BundleError(str(e)) from None
    bad = core.check_files(bundle, manifest)
    if bad:
        return False, "files do not match the manifest: " + "; ".join(bad)
    return run_selftest(bundle, timeout)


def run_selftest(bundle: Path, timeout: float) -> tuple[bool, str]:
    """The bundle's own ``run.py selftest`` (call it on a bundle that passed the gate)."""
    done = procs.run([sys.executable, bundle / "run.py", "selftest"], what="the selftest",
                     timeout=timeout, capture=True, cwd=bundle)
    lines = [ln for ln in done.output.splitlines() if ln.strip()]
    text = "\n".join(lines)
    if not done.ok and not any(ln.startswith("selftest FAILED") for ln in lines):
        text = (text + "\n" if text else "") + f"selftest FAILED: {done.reason}"
    return done.ok, text
