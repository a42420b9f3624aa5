"""Wheels for an air-gapped device (``--vendor-wheels``): every wheel a bundle's
``requirements.txt`` needs, dependencies included, for the profile's architecture, glibc and
CPython, so that ``pip install --no-index --find-links wheels -r requirements.txt`` works
with no network.

pip resolves them from the package registry at build time (the user asked for it), for the
profile's platform rather than this host's; when a pinned package has no wheel the profile
can install, the cell fails with that reason instead of shipping a bundle that cannot be
installed. Downloads are cached per (platform, Python, requirements) under edgepack's cache.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
from pathlib import Path

from edgepack import procs
from edgepack.profiles import DeviceProfile
from edgepack.toolchains import cache_dir

TIMEOUT = 1800  # seconds for one pip download


def platform_tags(profile: DeviceProfile) -> list[str]:
    """The manylinux tags a device with the profile's glibc and architecture installs,
    newest first. pip takes ``--platform`` tags literally, so every level is listed."""
    major, minor = (int(p) for p in profile.glibc.split(".")[:2])
    if major != 2 or minor < 17:
        return []  # older than manylinux2014: no current wheels install there
    tags = [f"manylinux_2_{m}_{profile.arch}" for m in range(minor, 16, -1)]
    return tags + [f"manylinux2014_{profile.arch}"]


def _key(profile: DeviceProfile, requirements: list[str]) -> str:
    text = "\n".join([profile.arch, profile.glibc, profile.python, *sorted(requirements)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def vendor(profile: DeviceProfile, requirements: list[str], log: Path | None = None) -> Path | str:
    """The folder holding the wheels (cached), or the reason they cannot be had."""
    key = _key(profile, requirements)
    folder = cache_dir() / "wheels" / f"{profile.arch}-py{profile.python}-{key}"
    done_marker = folder / ".complete"
    if done_marker.is_file():
        return folder
    tags = platform_tags(profile)
    if not tags:
        return (f"--vendor-wheels: profile '{profile.name}' has glibc {profile.glibc}, older "
                "than any manylinux wheel (2.17)")
    partial = folder.with_name(folder.name + f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    requirements_file = partial / "requirements.txt"
    requirements_file.write_text("\n".join(requirements) + "\n")
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
           "--only-binary=:all:", "--implementation", "cp", "--python-version",
           profile.python, *[a for t in tags for a in ("--platform", t)],
           "-r", str(requirements_file), "-d", str(partial / "wheels")]
    done = procs.run(cmd, what="pip download", timeout=TIMEOUT, capture=True, log=log)
    if not done.ok:
        shutil.rmtree(partial, ignore_errors=True)
        return why_not(done.output, profile) or (
            f"--vendor-wheels: {done.last_line() or done.reason}")
    shutil.rmtree(folder, ignore_errors=True)
    (partial / "wheels").replace(folder)
    shutil.rmtree(partial, ignore_errors=True)
    done_marker.write_text("\n".join(requirements) + "\n")
    return folder


NO_MATCH = re.compile(r"No matching distribution found for (\S+)")


def why_not(pip_output: str, profile: DeviceProfile) -> str | None:
    """pip's "no matching distribution" as a reason naming the profile's platform."""
    m = NO_MATCH.search(pip_output)
    if m is None:
        if "Could not fetch URL" in pip_output or "NewConnectionError" in pip_output:
            return "--vendor-wheels: the package registry cannot be reached from this host"
        return None
    return (f"no wheel of {m[1]} installs on profile '{profile.name}' ({profile.arch}, glibc "
            f"{profile.glibc}, CPython {profile.python}): the bundle could not be installed "
            "there; use a profile for a newer OS or a runtime version with such a wheel")


def copy_into(wheels: Path, bundle: Path) -> list[str]:
    """Copy the wheels into ``bundle/wheels`` (copies: a bundle never shares the cache's
    files); their names."""
    dest = bundle / "wheels"
    dest.mkdir(exist_ok=True)
    names = []
    for wheel in sorted(wheels.glob("*.whl")):
        shutil.copyfile(wheel, dest / wheel.name)
        names.append(wheel.name)
    return names
