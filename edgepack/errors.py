"""The errors edgepack raises.

Everything a user can cause is an :class:`EdgepackError`; the CLI prints its message on
one line of stderr and exits with code 2 (no traceback unless ``--debug``). Anything else
that escapes is a bug in edgepack: exit code 3, traceback, and a hint to report it.

    EdgepackError                 user-facing, exit 2
    ├── ModelError                missing, corrupt or unsupported model file
    ├── ShapeError                an input shape is dynamic where it must be fixed, or mismatched
    ├── DataError                 a dataset file is missing, malformed, or does not fit the model
    ├── ProfileError              unknown or invalid device profile
    ├── TargetError               unknown target/precision, or a profile that cannot run it
    ├── MissingExtraError         an optional runtime is not installed (names the extra)
    └── BundleError               a bundle or archive is missing, tampered or malformed
"""

from __future__ import annotations


class EdgepackError(Exception):
    """A problem with the user's input or environment. Its message says how to fix it."""

    exit_code = 2


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


class BundleError(EdgepackError):
    """A bundle directory or archive is missing, malformed or fails its checksums."""
