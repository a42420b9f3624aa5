"""Device backends: one file per runtime, copied into each bundle as ``backend.py``.

A backend needs only numpy and its runtime (never edgepack): ``Backend(model_path, threads,
options)`` with ``load() -> dict``, ``run(feeds) -> dict`` and ``close()``. ``options`` holds
the manifest's runtime options plus ``io`` (the manifest's inputs and outputs).
"""
