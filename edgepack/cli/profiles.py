from __future__ import annotations

import json
from typing import Annotated

import typer

from edgepack.cli.common import stdout

app = typer.Typer(help="List and show device profiles.", no_args_is_help=True)


@app.command("list")
def list_() -> None:
    """List the device profiles edgepack ships."""
    from rich.table import Table

    from edgepack.profiles import list_profiles

    table = Table("name", "arch", "cores", "memory", "threads", "runtimes", "description")
    for p in list_profiles():
        table.add_row(p.name, p.arch, str(p.cores), f"{p.memory_mb // 1024} GB", str(p.threads),
                      ", ".join(p.runtimes), p.description)
    stdout.print(table)


@app.command("show")
def show(name: Annotated[str, typer.Argument(help="Profile name or TOML path.")]) -> None:
    """Show one profile, with its accuracy budgets, as JSON."""
    from edgepack.profiles import load_profile

    print(json.dumps(load_profile(name).to_dict(), indent=2))
