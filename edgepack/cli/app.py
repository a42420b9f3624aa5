"""The ``edgepack`` command. Errors: EdgepackError → one line on stderr, exit 2; a bug → exit 3."""

from __future__ import annotations

import sys
import traceback
from typing import Annotated

import typer

from edgepack import __version__
from edgepack.errors import EdgepackError

app = typer.Typer(
    name="edgepack", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Package a trained model into verified, benchmarked bundles for edge devices.",
)
STATE = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgepack {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    STATE["debug"] = debug


def _register() -> None:
    from edgepack.cli import bench, build, inspect, profiles, toolchain, verify

    for module in (build, inspect, verify, bench):
        app.command(module.NAME, help=module.command.__doc__)(module.command)
    app.add_typer(profiles.app, name="profiles")
    app.add_typer(toolchain.app, name="toolchain")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app and map errors to exit codes."""
    _register()
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        app(args=argv)
    except EdgepackError as e:
        if debug:
            traceback.print_exc()
        print(f"edgepack: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("edgepack: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:
        traceback.print_exc()
        print(f"edgepack: internal error ({type(e).__name__}): this is a bug in edgepack "
              f"{__version__}; please report it with the command and the traceback above",
              file=sys.stderr)
        sys.exit(3)
