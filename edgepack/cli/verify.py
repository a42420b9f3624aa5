from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgepack.cli.common import stdout

NAME = "verify"


def command(
    bundle: Annotated[Path, typer.Argument(help="A bundle directory or its .tar.gz archive.")],
    sha256: Annotated[str | None, typer.Option(
        "--sha256", help="The archive's known sha256 (default: the SHA256SUMS beside it).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds allowed for the selftest.")] = 600.0,
    remote: Annotated[str | None, typer.Option(
        help="[user@]host[:port]: run the selftest on that board over SSH.")] = None,
    emulate: Annotated[bool, typer.Option(
        "--emulate", help="Run the selftest on the bundle profile's arm64 CPU under qemu "
        "instead of here (needs: edgepack toolchain install emulator).")] = False,
) -> None:
    """Check an archive against SHA256SUMS (or --sha256), then the bundle's checksums and its
    device selftest, here. What was checked goes to stdout; a failure is one line on stderr
    (exit 1)."""
    from rich.markup import escape

    from edgepack import settings
    from edgepack.bundle import opened_bundle
    from edgepack.errors import CheckFailed, UsageError

    settings.check("timeout", timeout, "--timeout")
    board = _board(remote)
    if emulate:
        from edgepack.emulation import SYSROOT

        if SYSROOT.missing():
            raise UsageError(f"--emulate: {SYSROOT.missing()}")
    with opened_bundle(bundle, sha256) as opened:
        _say_checked(bundle, opened)
        if board is not None:
            passed, log, where = _on_board(opened.folder, board, timeout)
        elif emulate:
            passed, log, where = _emulated(opened, timeout)
        else:
            from edgepack.bundle import run_selftest

            (passed, log), where = run_selftest(opened.folder, timeout), "here"
    if log:
        stdout.print(escape(log), highlight=False)
    if not passed:
        lines = log.strip().splitlines()
        raise CheckFailed(f"{bundle}: verification FAILED ({where})"
                          + (f": {lines[-1]}" if lines else ""))
    stdout.print(f"[green]{escape(str(bundle))}: verified ({escape(where)})[/]", highlight=False)


def _board(remote: str | None):
    """The --remote board, parsed before anything is opened or started (None: none)."""
    if remote is None:
        return None
    from edgepack.remote import parse_remote

    return parse_remote(remote)


def _say_checked(bundle: Path, opened) -> None:
    """What the gate checked, on stdout."""
    from rich.markup import escape

    auth = opened.authenticity
    if auth.status == "matched":
        stdout.print(f"archive sha256 matches {escape(auth.how)}", highlight=False)
    else:
        stdout.print(f"[yellow]{escape(auth.how)}: the checks prove the bundle is "
                     "self-consistent, not that it is authentic[/]", highlight=False)
    stdout.print(f"{len(opened.manifest['files'])} files match the manifest's checksums",
                 highlight=False)


def _on_board(folder, board, timeout: float) -> tuple[bool, str, str]:
    from edgepack.remote import check_reachable, on_board

    check_reachable(board)
    result = on_board(board, folder, timeout)
    where = f"on {board.name}: {(result.get('identity') or {}).get('model', '?')}"
    if "error" in result:
        return False, result["error"], where
    return True, "\n".join(result["selftest"]), where


def _emulated(opened, timeout: float) -> tuple[bool, str, str]:
    """The bundle's own selftest on its profile's CPU under qemu (after the gate)."""
    from edgepack.emulation import run_bundle
    from edgepack.errors import BundleError, UsageError

    profile = opened.manifest["profile"]
    if profile.get("arch") != "aarch64":
        raise UsageError(f"--emulate: the bundle is for {profile.get('arch')}, not aarch64")
    guest = _guest(profile)
    if guest is None:
        raise BundleError(f"--emulate: no CPU model for the bundle's CPU {profile.get('cpu')}")
    cpu = guest.qemu
    done = run_bundle(opened.folder, ["selftest"], guest, timeout)
    text = "\n".join(ln for ln in done.output.splitlines() if ln.strip())
    if not done.ok and "selftest FAILED" not in text:
        text += f"\nselftest FAILED: {done.reason}"
    return done.ok, text, f"emulated aarch64, {cpu}"


def _guest(manifest_profile: dict):
    """The CPU the build emulated for the bundle's profile: the shipped profile of that name
    when it names the same CPU (its features), else the CPU file's own."""
    from edgepack.cpus import guest_for
    from edgepack.errors import ProfileError
    from edgepack.profiles import load_profile

    cpu = str(manifest_profile.get("cpu", ""))
    try:
        profile = load_profile(str(manifest_profile.get("name", "")))
    except ProfileError:
        profile = None
    features = profile.features if profile is not None and profile.cpu == cpu else ()
    return guest_for(cpu, features)
