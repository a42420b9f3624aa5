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
    with opened_bundle(bundle) as folder:
        passed, log = check_bundle(folder, timeout=timeout)
    console.print(escape(log), highlight=False)
    if not passed:
        console.print(f"[red]{escape(str(bundle))}: verification FAILED[/]")
        raise typer.Exit(1)
    console.print(f"[green]{escape(str(bundle))}: verified[/]")
