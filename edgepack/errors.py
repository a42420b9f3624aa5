"""The errors edgepack raises.

Everything a user can cause is an :class:`EdgepackError`; the CLI prints its message on
one line of stderr and exits with code 2 (1 for :class:`CheckFailed`), with no traceback
unless ``--debug``. Anything else that escapes is a bug in edgepack: exit code 3, traceback,
and a hint to report it.
A signal that ends a build is :class:`Interrupted`, outside both families.

    EdgepackError                 user-facing, exit 2
    ├── UsageError                a flag or setting out of range, or flags that exclude each other
    ├── ModelError                missing, corrupt or unsupported model file, or a reference run
    │                             that cannot run it
    ├── ShapeError                an input shape is dynamic where it must be fixed, or mismatched
    ├── DataError                 a dataset file is missing, malformed, or does not fit the model
    ├── ProfileError              unknown or invalid device profile
    ├── TargetError               unknown target/precision, or a profile that cannot run it
    ├── MissingExtraError         an optional runtime is not installed (names the extra)
    ├── OutputError               the output folder cannot be written
    ├── BundleError               a bundle or archive is missing, unreadable or malformed
    └── CheckFailed               exit 1: a check the user asked for failed (a bundle refused by
                                  the archive gate: not the archive built, an unsafe member, a
                                  file that does not match its manifest; a selftest; a benchmark)
    Interrupted (BaseException)   SIGINT / SIGTERM: children killed, temporary files removed,
                                  exit 130 / 143
"""

from __future__ import annotations

import signal


class EdgepackError(Exception):
    """A problem with the user's input or environment. Its message says how to fix it."""

    exit_code = 2


class UsageError(EdgepackError):
    """A flag or setting has a value outside its range, or flags conflict."""


class ModelError(EdgepackError):
    """The model file is missing, unreadable, corrupt or not a supported format."""


class ShapeError(EdgepackError):
    """An input shape is dynamic where a fixed one is needed, or does not match."""


class DataError(EdgepackError):
    """A dataset is missing, malformed, or its arrays do not fit the model's inputs."""


class ProfileError(EdgepackError):
    """A device profile is unknown or its file is invalid."""


class TargetError(EdgepackError):
    """An unknown target or precision, or one that the chosen profile cannot run."""


class MissingExtraError(EdgepackError):
    """An optional runtime is not installed."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the '{package}' package, which is not installed; "
            f"install it with: pip install 'edgepack[{extra}]'"
        )
        self.package = package
        self.extra = extra


class OutputError(EdgepackError):
    """The output folder is not a folder, or cannot be written."""


class BundleError(EdgepackError):
    """A bundle directory or archive is missing, unreadable or malformed (a manifest field of
    the wrong type, a SHA256SUMS that is not text)."""


class CheckFailed(EdgepackError):
    """A check failed, like a cell that fails its gates: exit code 1, still one line. The
    archive gate refusing a bundle (its digest, an unsafe member, a file that does not match
    its manifest), a failed selftest or benchmark."""

    exit_code = 1


class Interrupted(BaseException):  # noqa: N818 - a signal, not an error
    """SIGINT or SIGTERM arrived. A BaseException so that no ``except Exception`` swallows it
    (and typer/click do not turn it into their own "Aborted!")."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


FIRST_LINE_LIMIT = 300  # characters of an exception's message a one-line reason keeps


def first_line(e: BaseException, limit: int = FIRST_LINE_LIMIT) -> str:
    """The first non-blank line of ``e``'s message, cut at ``limit`` characters, or the
    exception's type name when it has no message: how a caught exception becomes one line of
    a reason. (The bundle's ``run.py`` and the TensorFlow worker run standalone, without
    edgepack, and keep their own copy.)"""
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    return lines[0].strip()[:limit] if lines else type(e).__name__
