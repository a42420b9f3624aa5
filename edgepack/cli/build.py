"""``edgepack build`` and ``edgepack plan``: their flags come from edgepack.options (one
declaration per option) and from each target's own options."""

from __future__ import annotations

import inspect
import json
import time
from pathlib import Path
from typing import Annotated

import typer

from edgepack.cli.common import console, stdout

NAME = "build"
DOC = "Build verified, benchmarked bundles of MODEL for device profiles and runtimes."
PLAN_DOC = ("Print the build matrix as JSON for a CI matrix: one entry per profile and "
            "target (build each with edgepack build --cell ID; merge with edgepack report "
            "merge).")


def _command_parameters(plan_only: bool) -> list[inspect.Parameter]:
    """What build/plan take besides the options: the config file, --json, --debug."""
    from rich.markup import escape

    params = [
        ("config", Path | None, None, typer.Option(
            "--config", help=escape("A config file (edgepack.toml, or a pyproject.toml with "
                                    "[tool.edgepack]); flags override its values."),
            metavar="FILE", rich_help_panel="Input")),
        ("debug", bool, False, typer.Option("--debug", help="Show tracebacks.", metavar="",
                                            rich_help_panel="Output and cache")),
    ]
    if not plan_only:
        params.append(("as_json", bool, False, typer.Option(
            "--json", help="Print report.json to stdout.", metavar="",
            rich_help_panel="Output and cache")))
    return [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                              annotation=Annotated[kind, info])
            for name, kind, default, info in params]


def _option_parameters() -> list[inspect.Parameter]:
    """One parameter per build option that has a flag (or is the MODEL argument)."""
    from rich.markup import escape

    from edgepack.options import OPTIONS
    from edgepack.targets import target_names

    params = []
    for o in OPTIONS.values():
        if o.argument:
            info = typer.Argument(help=escape(o.help), show_default=False, metavar="MODEL")
        elif o.flags and o.kind.cli_type is not None:
            text = o.help
            if o.name == "targets":
                text = f"Targets (runtimes): {', '.join(target_names())} (default: the " \
                       "profile's runtimes)."
            info = typer.Option(*o.flags, help=escape(text), rich_help_panel=o.panel,
                                metavar=o.metavar or o.kind.metavar, show_default=False)
        else:
            continue
        kind = o.kind.cli_type
        params.append(inspect.Parameter(
            o.name, inspect.Parameter.KEYWORD_ONLY, default=False if kind is bool else None,
            annotation=Annotated[kind, info]))
    return params


def _target_parameters() -> list[inspect.Parameter]:
    """One keyword parameter per target option (each target declares its own flags)."""
    from edgepack.targets import all_targets

    params, seen = [], {}
    for target in all_targets():
        for option in target.options:
            if option.name in seen:  # several targets may share one option (same flag)
                if seen[option.name] != option.flag:
                    raise RuntimeError(f"targets declare option '{option.name}' with two flags: "
                                       f"{seen[option.name]} and {option.flag}")
                continue
            seen[option.name] = option.flag
            kind = bool if option.type is bool else (option.type | None)
            params.append(inspect.Parameter(
                f"target__{option.name}", inspect.Parameter.KEYWORD_ONLY,
                default=False if option.type is bool else None,
                annotation=Annotated[kind, typer.Option(
                    option.flag, help=option.help, rich_help_panel="Target options",
                    show_default=False, metavar="" if option.type is bool else None)]))
    return params


def make_command(plan_only: bool = False):
    """The build (or plan) command: every build option, the command's own options, and
    every target's own options."""
    params = _option_parameters() + _command_parameters(plan_only) + _target_parameters()

    def command(**values) -> None:
        flags = flag_values(values)
        (run_plan if plan_only else run)(flags, values.get("config"), values.get("as_json"))

    command.__signature__ = inspect.Signature(params)
    command.__doc__ = PLAN_DOC if plan_only else DOC
    return command


def flag_values(values: dict) -> dict:
    """The flags the user gave, by option name (None: not given)."""
    from edgepack.options import OPTIONS

    flags = {name: o.kind.from_cli(values[name], o.flag) for name, o in OPTIONS.items()
             if name in values}
    for name, o in OPTIONS.items():
        if name in flags and flags[name] is not None:
            flags[name] = o.check_value(flags[name], o.flag)
    targets = {k.removeprefix("target__"): v for k, v in values.items()
               if k.startswith("target__") and v not in (None, False)}
    flags["target_options"] = targets or None
    return flags


def run(flags: dict, config: Path | None, as_json: bool) -> None:
    from edgepack.api import options_list
    from edgepack.pipeline import build

    ok = True
    for opts in options_list(flags, config):
        with _progress_bar(console if as_json else stdout) as progress:
            result = build(opts, progress)
        ok &= result.ok
        show(result, as_json)
    if not ok:
        raise typer.Exit(1)


def run_plan(flags: dict, config: Path | None, as_json: bool = False) -> None:
    from edgepack.api import plan

    stdout.print_json(json.dumps(plan(flags, config)))


def show(result, as_json: bool) -> None:
    from rich.markup import escape

    from edgepack.report.render import terminal_table, to_json

    report = result.report
    if as_json:
        stdout.print_json(to_json(report))
    else:
        console.print(terminal_table(report, result.built))
        host = report.host
        boards = any(c.boards for c in result.built)
        from edgepack.report.rows import device_ranking, speed_sources

        console.print(escape(speed_sources(report)))
        for line in device_ranking(report):
            console.print(escape(line))
        console.print(f"host columns: measured on this host ({host['cpu']}, "
                      f"{host['cpus']} CPUs), "
                      + ("except the ↳ rows: those are the named board's own."
                         if boards else "not on the device."))
        for cell in result.built:
            if cell.status in ("failed", "skipped", "declined"):
                color = "red" if cell.status == "failed" else "yellow"
                console.print(f"[{color}]{escape(cell.key)} {cell.status}:[/] "
                              f"{escape(cell.reason or '')}")
        cached = [c for c in result.built if c.cached]
        if cached:
            retimed = all(c.cached.rebenchmarked for c in cached)
            console.print(f"{len(cached)} cell(s) restored from the build cache; "
                          + ("re-timed now." if retimed else "their latency and memory are "
                             "from the build that made them (--rebench times them again)."))
        mine = {c.key for c in result.built}
        others = sum(c.key not in mine for c in report.cells)
        if others:
            console.print(f"{others} more cell(s) from earlier builds are in the same folder "
                          "and its report.")
        for note in report.notes:
            console.print(f"[yellow]note:[/] {escape(note)}")
    console.print(f"Report: {result.out_dir / 'report.md'} (also report.json, report.html, "
                  "junit.xml)")


class _progress_bar:  # noqa: N801 - a context manager
    """Progress over the build's cells, yielding the pipeline's callback: a transient bar on a
    terminal; plain timestamped lines in CI logs and pipes, written to `log` (stdout, so that
    stderr holds only an error line; stderr when stdout carries --json)."""

    def __init__(self, log):
        self.log = log

    def __enter__(self):
        from rich.markup import escape

        self.bar = None
        if console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                                transient=True)
            self.bar.__enter__()
            self.task = self.bar.add_task("edgepack build", total=None)

        def progress(message, cell, done, total):
            finished = cell is not None and cell.status != "pending"
            if self.bar is not None:
                counts = {} if done is None else {"completed": done, "total": total or None}
                self.bar.update(self.task, description=escape(message), **counts)
            elif not finished:  # CI logs: one timestamped line as each step starts
                stamp = time.strftime("%H:%M:%S")
                self.log.print(f"[{stamp}] {message}", markup=False, highlight=False)
            if finished:
                mark = {"ok": "[green]ok[/]", "failed": "[red]FAILED[/]"}.get(cell.status,
                                                                             cell.status)
                if self.bar is not None:
                    console.print(f"  {escape(cell.key)}: {mark}")
                else:  # progress and facts go to stdout; stderr keeps the error line
                    self.log.print(f"  [{time.strftime('%H:%M:%S')}] {escape(cell.key)}: "
                                   f"{mark}", highlight=False)

        return progress

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
