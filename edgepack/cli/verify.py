from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgepack.cli.common import console

NAME = "verify"


def command(
    bundle: Annotated[Path, typer.Argument(help="A bundle directory or its .tar.gz archive.")],
) -> None:
    """Check a bundle's checksums and run its device selftest here."""
    from rich.markup import escape

    from edgepack.bundle import check_bundle

    passed, log = check_bundle(bundle)
    console.print(escape(log), highlight=False)
    if not passed:
        console.print(f"[red]{escape(str(bundle))}: verification FAILED[/]")
        raise typer.Exit(1)
    console.print(f"[green]{escape(str(bundle))}: verified[/]")
