from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgepack.cli.common import console

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
    device selftest, here."""
    from rich.markup import escape

    from edgepack import settings
    from edgepack.bundle import check_bundle, opened_bundle, verify_archive_digest
    from edgepack.errors import UsageError

    settings.check("timeout", timeout, "--timeout")
    if bundle.is_file():
        auth = verify_archive_digest(bundle, sha256)
        if auth.status == "mismatch":
            console.print(f"[red]{escape(str(bundle))}: verification FAILED: {escape(auth.how)}[/]")
            raise typer.Exit(1)
        if auth.status == "matched":
            console.print(f"archive sha256 matches {escape(auth.how)}", highlight=False)
        else:
            console.print(f"[yellow]no external digest: {escape(auth.how)}; the checks below "
                          "prove the bundle is self-consistent, not that it is authentic[/]")
    elif sha256 is not None:
        raise UsageError("--sha256 checks an archive (.tar.gz), not a bundle folder")
    else:
        console.print("[yellow]a bundle folder has no external digest: the checks below prove "
                      "it is self-consistent, not that it is authentic[/]")
    where = "here"
    with opened_bundle(bundle) as folder:
        if remote is not None:
            passed, log, where = _on_board(folder, remote, timeout)
        elif emulate:
            passed, log, where = _emulated(folder, timeout)
        else:
            passed, log = check_bundle(folder, timeout=timeout)
    console.print(escape(log), highlight=False)
    if not passed:
        console.print(f"[red]{escape(str(bundle))}: verification FAILED ({where})[/]")
        raise typer.Exit(1)
    console.print(f"[green]{escape(str(bundle))}: verified ({where})[/]")


def _on_board(folder, remote: str, timeout: float) -> tuple[bool, str, str]:
    from edgepack.remote import check_reachable, on_board, parse_remote

    board = parse_remote(remote)
    check_reachable(board)
    result = on_board(board, folder, timeout)
    where = f"on {board.name}: {(result.get('identity') or {}).get('model', '?')}"
    if "error" in result:
        return False, result["error"], where
    return True, "\n".join(result["selftest"]), where


def _emulated(folder, timeout: float) -> tuple[bool, str, str]:
    """Checksums here, then the bundle's own selftest on its profile's CPU under qemu."""
    from edgepack.device import core
    from edgepack.emulation import SYSROOT, cpu_for, run_bundle
    from edgepack.errors import BundleError, UsageError

    missing = SYSROOT.missing()
    if missing:
        raise UsageError(f"--emulate: {missing}")
    manifest = core.load_manifest(folder)
    profile = manifest.get("profile", {})
    if profile.get("arch") != "aarch64":
        raise UsageError(f"--emulate: the bundle is for {profile.get('arch')}, not aarch64")
    cpu = cpu_for(profile.get("cpu", ""))
    if cpu is None:
        raise BundleError(f"--emulate: no qemu model for the bundle's CPU {profile.get('cpu')}")
    bad = core.check_files(folder, manifest)
    if bad:
        return False, "files do not match the manifest: " + "; ".join(bad), "checksums"
    done = run_bundle(folder, ["selftest"], cpu, timeout)
    text = "\n".join(ln for ln in done.output.splitlines() if ln.strip())
    if not done.ok and "selftest FAILED" not in text:
        text += f"\nselftest FAILED: {done.reason}"
    return done.ok, text, f"emulated aarch64, {cpu}"
