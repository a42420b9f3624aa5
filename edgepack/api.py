"""The Python API: what the CLI does, for scripts and notebooks. The CLI is a thin layer over it.

    import edgepack
    report = edgepack.build(model="model.onnx", profiles=["rpi4"], targets=["ort"],
                            precisions=["fp32", "int8"], eval="eval.npz", max_latency_ms=5)
    report.ok, [(c.key, c.status, c.latency.p50) for c in report.cells if c.latency]

Keyword arguments are the config file's keys (``edgepack.options.OPTIONS``); ``config=`` reads
a config file and the arguments override it. Errors a user can cause raise
:class:`edgepack.errors.EdgepackError` with the same one-line message the CLI prints.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from edgepack.config import check_values, find_config, load_config, merged
from edgepack.errors import UsageError
from edgepack.options import OPTIONS, CellId, Names, build_options


def options_list(flags: dict, config: Path | str | None = None) -> list:
    """One BuildOptions per model: the config file's (``config``, or ./edgepack.toml when no
    model is given) with ``flags`` on top; ``flags["cells"]`` selects cells (--cell)."""
    flags = dict(flags)
    cells = flags.pop("cells", None)
    if cells is not None and not cells:  # --cell "": a mistake, not "every cell"
        raise UsageError("--cell names no cell; pass PROFILE/TARGET[-PRECISION] (see: "
                         "edgepack plan)")
    cfg = None
    if config is not None:
        cfg = load_config(Path(config))
    elif flags.get("model") is None:
        found = find_config()
        if found is None:
            raise UsageError("no MODEL given and no edgepack.toml (or pyproject.toml with "
                             "[tool.edgepack]) here; pass a model file or --config FILE")
        cfg = load_config(found)
    models = cfg.models if cfg else [{}]
    if cfg and flags.get("model") is not None and len(models) > 1:
        raise UsageError(f"{cfg.path.name} declares {len(models)} models; a MODEL argument "
                         "cannot replace all of them (leave it out, or use a one-model config)")
    opts = [build_options(merged(raw, flags)) for raw in models]
    names = [o.name for o in opts]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"{cfg.path.name if cfg else 'config'}: several models are named "
                         f"{', '.join(twice)} (the file name without suffix): their outputs "
                         "would collide; rename one file")
    if not cells:
        return opts
    per: dict[str, list[CellId]] = {n: [] for n in names}
    for wanted in cells:
        if wanted.model is not None:
            if wanted.model not in per:
                raise UsageError(f"--cell {wanted}: no model named '{wanted.model}'; models: "
                                 f"{', '.join(names)}")
            per[wanted.model].append(replace(wanted, model=None))
        elif len(opts) == 1:
            per[names[0]].append(wanted)
        else:
            raise UsageError(f"--cell {wanted}: write PROFILE/TARGET[-PRECISION], prefixed "
                             "MODEL/ (this config has several models)")
    return [replace(o, cells=tuple(per[o.name])) for o in opts if per[o.name]]


def _flags(kwargs: dict) -> dict:
    """API keyword arguments, checked like config keys (same names, same types)."""
    cells = kwargs.pop("cells", None)
    model = kwargs.get("model")
    def plain(key: str, v):
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, str) and isinstance(getattr(OPTIONS.get(key), "kind", None), Names):
            return [v]  # one name where a list is due: friendly in Python
        return list(v) if isinstance(v, tuple) else v

    checked = check_values({k: plain(k, v) for k, v in kwargs.items() if v is not None},
                           "edgepack.build():", None)
    if model is not None:
        checked["model"] = Path(model)
    if cells is not None:
        checked["cells"] = tuple(CellId.parse(c, "cells=") for c in
                                 ([cells] if isinstance(cells, str) else cells))
    return checked


def build(config: Path | str | None = None, progress=None, **options):
    """Build bundles; returns the typed Report (a list of them when the config declares
    several models). ``options`` are config keys, e.g. ``model=``, ``profiles=[...]``."""
    from edgepack.pipeline import build as run_build

    reports = [run_build(o, progress).report
               for o in options_list(_flags(options), config)]
    return reports[0] if len(reports) == 1 else reports


def plan(flags: dict | None = None, config: Path | str | None = None, **options) -> dict:
    """The build matrix as a CI matrix: {"include": [{"cell": ID, ...}], "skipped": [...]}."""
    from edgepack.importers import parse_model
    from edgepack.pipeline.options import validate
    from edgepack.pipeline.plan import matrix
    from edgepack.pipeline.plan import plan as plan_cells

    all_opts = options_list(flags if flags is not None else _flags(options), config)
    out: dict = {"include": [], "skipped": []}
    for opts in all_opts:
        validate(opts)
        parse_model(opts.model, opts.weights, opts.trust_pickle)
        m = matrix(opts, plan_cells(opts), opts.name if len(all_opts) > 1 else None)
        out["include"] += m["include"]
        out["skipped"] += m["skipped"]
    return out


def merge(folders: list[Path | str], output: Path | str, prefer: Path | str | None = None):
    """Merge the output folders of ``build --cell`` jobs into ``output``; returns the merged
    reports (one per model). A cell two folders hold with different bundles is an error,
    unless ``prefer`` names the folder to keep it from."""
    from edgepack.pipeline.merge import merge as run_merge

    return run_merge([Path(f) for f in folders], Path(output),
                     Path(prefer) if prefer is not None else None)


def compare(old: Path | str, new: Path | str, **thresholds):
    """Per-cell deltas between two report.json files; ``.regressions`` lists what got worse."""
    from edgepack.report.compare import compare as run_compare

    return run_compare(Path(old), Path(new), **thresholds)
