from __future__ import annotations

from typing import Annotated

import typer

from edgepack import procs
from edgepack.cli.common import console, stdout

app = typer.Typer(help="List and install isolated converter environments.",
                  no_args_is_help=True)


@app.command("list")
def list_() -> None:
    """Show each converter environment: installed or not, its versions, path and size."""
    from rich.table import Table

    from edgepack.pipeline.tools import toolchain_groups
    from edgepack.toolchains import disk_usage

    table = Table("for", "toolchain", "status", "python", "pins", "size", "path")
    for group, chains in toolchain_groups().items():
        for chain in chains:
            lo, hi = chain.python
            if chain.installed():
                status, size = "installed", f"{disk_usage(chain.path) / 2**30:.1f} GiB"
            else:
                python = chain.find_python()
                status = "not installed" if python else "unavailable: no suitable Python"
                size = f"~{chain.size}"
            pins = ", ".join(f"{p} {chain.version(p)}" for p in chain.shown if chain.version(p))
            table.add_row(group, chain.name, status, f"{lo[0]}.{lo[1]}-{hi[0]}.{hi[1]}",
                          pins, size, str(chain.path))
    stdout.print(table)


@app.command("install")
def install(
    name: Annotated[str, typer.Argument(
        help="A target or an importer's framework (e.g. tensorflow), or one toolchain by "
        "name (see: edgepack toolchain list).")],
    force: Annotated[bool, typer.Option(help="Re-install even if present.")] = False,
) -> None:
    """Create the pinned converter environment(s) for NAME in edgepack's cache."""
    from edgepack.pipeline.tools import toolchains_for

    chains = toolchains_for(name)
    for chain in chains:
        with procs.locked(chain.path.parent):  # a concurrent install waits, then finds it
            _install_one(chain, several=len(chains) > 1, force=force)


def _install_one(chain, several: bool, force: bool) -> None:
    from edgepack.toolchains import install as do_install

    if chain.installed() and not force:
        console.print(f"{chain.name}: already installed in {chain.path}")
        return
    if chain.find_python() is None and several:
        lo, hi = chain.python
        console.print(f"[yellow]{chain.name}: skipped, needs Python {lo[0]}.{lo[1]}-"
                      f"{hi[0]}.{hi[1]} (none found); builds record it as unavailable[/]")
        return
    console.print(f"{chain.name}: installing (about {chain.size})")
    log = lambda msg: console.print(f"  {msg}", highlight=False)  # noqa: E731
    if hasattr(chain, "install"):  # builds itself (the emulator's sysroot)
        chain.install(log)
    else:
        do_install(chain, log)
