"""Small helpers shared by the commands."""

from __future__ import annotations

import sys

from rich.console import Console

# progress and tables go to stderr (wide enough for the table in CI logs); --json to stdout.
# soft_wrap: a long line stays one line (a log reader greps it; an error is one line)
console = Console(stderr=True, width=None if sys.stderr.isatty() else 200, soft_wrap=True)
stdout = Console(width=None if sys.stdout.isatty() else 200, soft_wrap=True)


def split_list(values: list[str] | None) -> tuple[str, ...] | None:
    """Comma-separated or repeated flags → one tuple; None when not given at all, and an
    empty tuple when given but naming nothing (``--target ""``: an error for the caller)."""
    if values is None:
        return None
    return tuple(v.strip() for item in values for v in item.split(",") if v.strip())
