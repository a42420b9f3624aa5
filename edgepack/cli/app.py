"""The ``edgepack`` command and its exit codes.

EdgepackError and bad usage → one line on stderr, exit 2 (traceback only with ``--debug``);
a bug → traceback and exit 3; SIGINT/SIGTERM → child processes killed, temporary files
removed, one line, exit 130/143.
"""

from __future__ import annotations

import signal
import sys
import traceback
from typing import Annotated

import typer

from edgepack.errors import EdgepackError, Interrupted
from edgepack.version import __version__


def _both(name: str) -> tuple[type, ...]:
    """An exception class from click and from the copy of click that typer >= 0.20 vendors
    (typer raises its own copy's, other code the real one's)."""
    import importlib

    found = []
    for module in ("click.exceptions", "typer._click.exceptions"):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(found)


CLICK_ERROR, BAD_PARAMETER = _both("ClickException"), _both("BadParameter")
NO_ARGS, ABORT = _both("NoArgsIsHelpError"), _both("Abort")

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


def _quiet_types() -> None:
    """Help without type noise: no ``<bool>`` beside a switch (``--help`` included), and an
    argument shown by its metavar, not ``<path>``. (typer shows a parameter's type where
    it has no metavar.)"""
    from typer import core

    option, argument = core.TyperOption.display_type_rich, core.TyperArgument.display_type_rich

    def option_type(self, ctx):
        return None if self.is_flag and not self.metavar else option(self, ctx)

    def argument_type(self, ctx):
        return None if self.metavar else argument(self, ctx)

    core.TyperOption.display_type_rich = option_type
    core.TyperArgument.display_type_rich = argument_type


def _register() -> None:
    from edgepack.cli import (
        bench,
        build,
        debug_accuracy,
        inspect,
        profiles,
        report,
        toolchain,
        verify,
    )

    for module in (build, inspect, verify, bench, debug_accuracy):
        command = module.make_command() if hasattr(module, "make_command") else module.command
        app.command(module.NAME, help=command.__doc__)(command)
    plan = build.make_command(plan_only=True)
    app.command("plan", help=plan.__doc__)(plan)
    app.add_typer(report.app, name="report")
    app.add_typer(profiles.app, name="profiles")
    app.add_typer(toolchain.app, name="toolchain")


def _on_signal(signum, frame) -> None:
    # once: a second signal while cleaning up must not interrupt the cleanup
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Interrupted(signum)


def usage_line(e: Exception) -> str:
    """A click/typer usage error as one line: 'edgepack: error: --runs: ...'."""
    message = " ".join(e.format_message().split())
    if isinstance(e, BAD_PARAMETER) and e.param is not None:
        name = (e.param.opts or [e.param.name or "?"])[0]
        message = message.replace(f"Invalid value for '{name}': ", "")
        message = f"{name}: {message}"
    command = e.ctx.command_path if getattr(e, "ctx", None) else "edgepack"
    return f"edgepack: error: {message} (see '{command} --help')"


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app and map errors to exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    try:
        _quiet_types()
        _register()
        rv = typer.main.get_command(app).main(args=args, prog_name="edgepack",
                                              standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except NO_ARGS as e:
        print(e.ctx.get_help())
        code = 2
    except CLICK_ERROR as e:
        if debug:
            traceback.print_exc()
        print(usage_line(e), file=sys.stderr)
        code = 2
    except ABORT:
        print("edgepack: aborted", file=sys.stderr)
        code = 1
    except EdgepackError as e:
        if debug:
            traceback.print_exc()
        print(f"edgepack: error: {' '.join(str(e).split())}", file=sys.stderr)
        code = e.exit_code
    except Interrupted as e:
        from edgepack import procs

        procs.kill_all()
        print(f"edgepack: interrupted ({e}): child processes killed, temporary files removed",
              file=sys.stderr)
        code = e.exit_code
    except Exception as e:
        traceback.print_exc()
        print(f"edgepack: internal error ({type(e).__name__}): this is a bug in edgepack "
              f"{__version__}; please report it with the command and the traceback above",
              file=sys.stderr)
        code = 3
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    sys.exit(code)
