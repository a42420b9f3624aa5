"""edgepack: turn a trained model into verified, benchmarked bundles for edge devices.

Importing this package loads only the light core (numpy-free even): runtimes and
converters are imported lazily by the targets that need them.
"""

from edgepack.version import __version__


def __getattr__(name: str):
    """The Python API (edgepack.build, plan, merge, compare), imported on first use."""
    if name in ("build", "plan", "merge", "compare"):
        from edgepack import api

        return getattr(api, name)
    raise AttributeError(f"module 'edgepack' has no attribute {name!r}")


__all__ = ["__version__", "build", "compare", "merge", "plan"]
