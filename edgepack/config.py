"""The config file (``edgepack.toml`` or ``[tool.edgepack]`` in pyproject.toml) and the one
place where raw option values — from the file, from flags or from the Python API — become
:class:`BuildOptions`.

    # edgepack.toml
    profiles = ["rpi4"]                 # top-level keys apply to every model
    output = "dist"

    [[models]]
    model = "sample_models/digits_cnn.onnx"
    targets = ["ort"]
    precisions = ["fp32", "fp16", "int8"]
    eval = "sample_models/digits_cnn.npz"

    [[models.gates]]                    # release gates; profile/target/precision narrow them
    target = "ort"
    max_latency_ms = 2.0
    latency_percentile = "p90"

A file with one model may put ``model = ...`` at the top level instead of ``[[models]]``.
Paths are relative to the file's folder. Unknown keys and wrong types are a ConfigError
(exit 2) naming the file and the key's location, e.g. ``edgepack.toml: models[0].precison``.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass
from pathlib import Path

from edgepack.errors import UsageError
from edgepack.gates import LIMIT_KEYS, MATCH_KEYS, Limits

CONFIG_NAMES = ("edgepack.toml",)


class ConfigError(UsageError):
    """The config file is unreadable, or a key is unknown or has the wrong type."""


# key -> (kind, meaning). kinds: str, path, bool, int, float, list (of str), shapes, fixed
KEYS: dict[str, tuple[str, str]] = {
    "model": ("path", "the model file or entry point file.py:function"),
    "profiles": ("list", "device profile names or TOML paths"),
    "targets": ("list", "targets (runtimes)"),
    "precisions": ("list", "precisions: fp32, fp16, int8-dynamic, int8, or auto"),
    "data": ("path", "calibration and evaluation data (.npz/.npy)"),
    "calib": ("path", "calibration data"),
    "eval": ("path", "evaluation data"),
    "input_shapes": ("shapes", "a table NAME = [d1, d2, ...] fixing dynamic inputs"),
    "fix_inputs": ("fixed", "a table NAME = value or [values] freezing inputs"),
    "weights": ("path", "a PyTorch state dict for an entry point"),
    "trust_pickle": ("bool", "load a pickled PyTorch model (runs its code)"),
    "emulate": ("bool", "verify aarch64 bundles under qemu"),
    "remotes": ("list", "boards over SSH: [PROFILE=][user@]host[:port]"),
    "vendor_wheels": ("bool", "put the device's wheels into each bundle"),
    "output": ("path", "the output folder"),
    "runs": ("int", "timed runs per bundle"),
    "min_time": ("float", "seconds to time each bundle for"),
    "warmup": ("int", "untimed warm-up runs"),
    "bench_rounds": ("int", "benchmark processes per bundle"),
    "jobs": ("int", "profile/target groups built in parallel"),
    "cache": ("path", "the content-addressed build cache folder"),
    "rebench": ("bool", "re-time cells restored from the cache"),
    "threads": ("int", "inference threads"),
    "max_accuracy_drop": ("float", "max top-1 drop in points"),
    "min_cosine": ("float", "min cosine per output"),
    "min_speedup": ("float", "min speedup over fp32"),
    "calibration": ("str", "minmax, entropy or percentile"),
    "allow_synthetic_calibration": ("bool", "allow static int8 calibrated on random data"),
    "strategy": ("str", "only try strategies whose name contains this"),
    "timeout": ("float", "seconds for each lowering, evaluation, selftest or benchmark"),
    "max_latency_ms": ("float", "release gate on latency"),
    "latency_percentile": ("str", "which latency max_latency_ms gates"),
    "max_size_mb": ("float", "release gate on the bundle's size"),
    "max_peak_rss_mb": ("float", "release gate on peak memory"),
    "gates": ("gates", "an array of tables: release gates for some cells"),
    "target_options": ("table", "target options by name, e.g. {int8_io = true}"),
}
_KIND_WORDS = {"str": "a string", "path": "a string (a path)", "bool": "true or false",
               "int": "an integer", "float": "a number", "list": "a string or a list of strings",
               "shapes": "a table of integer lists", "fixed": "a table of numbers or number "
               "lists", "gates": "an array of tables", "table": "a table"}
DEFAULTS = {"output": Path("dist"), "warmup": 10, "bench_rounds": 1, "jobs": 1,
            "calibration": "minmax",
            "timeout": 900.0}


@dataclass(frozen=True)
class Config:
    """A parsed config file: the raw option dicts of each model, keys checked."""

    path: Path
    models: list[dict]


def find_config(start: Path | None = None) -> Path | None:
    """``edgepack.toml`` in ``start`` (default: the working folder), else a pyproject.toml
    there with a ``[tool.edgepack]`` table."""
    folder = start or Path.cwd()
    for name in CONFIG_NAMES:
        if (folder / name).is_file():
            return folder / name
    pyproject = folder / "pyproject.toml"
    if pyproject.is_file():
        try:
            if "edgepack" in tomllib.loads(pyproject.read_text()).get("tool", {}):
                return pyproject
        except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError):
            return None
    return None


def load_config(path: Path) -> Config:
    """Parse and check a config file; ConfigError naming the key on any problem."""
    from edgepack.settings import read_toml

    data = read_toml(path, "config", ConfigError)
    where = path.name
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("edgepack")
        where = "pyproject.toml: [tool.edgepack]"
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: no [tool.edgepack] table")
    models = data.pop("models", None)
    shared = check_values(data, where, path.parent)
    if models is None:
        if "model" not in shared:
            raise ConfigError(f"{where}: no model: set model = \"FILE\" or add [[models]] "
                              "tables")
        return Config(path, [shared])
    if not isinstance(models, list) or not all(isinstance(m, dict) for m in models) \
            or not models:
        raise ConfigError(f"{where}: models must be an array of tables ([[models]])")
    if "model" in shared:
        raise ConfigError(f"{where}: model is set at the top level and in [[models]]; put it "
                          "in each [[models]] table")
    out = []
    for i, table in enumerate(models):
        own = check_values(table, f"{where}: models[{i}]", path.parent)
        if "model" not in own:
            raise ConfigError(f"{where}: models[{i}] has no model = \"FILE\"")
        gates = [*shared.get("gates", ()), *own.get("gates", ())]
        out.append({**shared, **own, "gates": gates})
    return Config(path, out)


def check_values(table: dict, where: str, base: Path | None) -> dict:
    """Each key known and of its kind; paths made relative to ``base``. Returns new dict."""
    out = {}
    for key, value in table.items():
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else \
                f"; known keys: {', '.join(KEYS)}"
            raise ConfigError(f"{where}.{key}: unknown key{hint}")
        out[key] = _convert(key, value, f"{where}.{key}", base)
    return out


def _convert(key: str, value, where: str, base: Path | None):
    kind = KEYS[key][0]
    bad = ConfigError(f"{where}: {value!r} is not {_KIND_WORDS[kind]} ({KEYS[key][1]})")
    if kind in ("str", "path"):
        if not isinstance(value, str) or not value:
            raise bad
        if kind == "str":
            return value
        head, sep, tail = value.partition(":")  # an entry point: file.py:make_model
        if not (sep and head.endswith(".py")):
            head, sep, tail = value, "", ""
        path = Path(head) if Path(head).is_absolute() or base is None else base / head
        if path.is_absolute() and path.is_relative_to(Path.cwd()):
            path = path.relative_to(Path.cwd())  # reports show what the user wrote
        return Path(f"{path}{sep}{tail}")
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad
        return float(value)
    if kind == "list":
        if isinstance(value, str):
            value = [v for v in value.split(",")]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad
        return tuple(v.strip() for v in value if v.strip())
    if kind == "shapes":
        if not isinstance(value, dict) or not all(
                isinstance(v, list) and v and all(isinstance(d, int) and not isinstance(d, bool)
                                                  and d >= 1 for d in v)
                for v in value.values()):
            raise bad
        return {k: tuple(v) for k, v in value.items()}
    if kind == "fixed":
        def numbers(v) -> tuple[float, ...] | None:
            v = v if isinstance(v, list) else [v]
            ok = v and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)
            return tuple(float(x) for x in v) if ok else None
        if not isinstance(value, dict) or any(numbers(v) is None for v in value.values()):
            raise bad
        return {k: numbers(v) for k, v in value.items()}
    if kind == "table":
        if not isinstance(value, dict):
            raise bad
        return dict(value)
    if kind == "gates":
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise bad
        return [_gate(g, f"{where}[{i}]") for i, g in enumerate(value)]
    raise AssertionError(kind)


def _gate(table: dict, where: str) -> Limits:
    for key, value in table.items():
        if key not in (*MATCH_KEYS, *LIMIT_KEYS):
            close = difflib.get_close_matches(key, (*MATCH_KEYS, *LIMIT_KEYS), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{where}.{key}: unknown gate key{hint}; gate keys: "
                              f"{', '.join((*MATCH_KEYS, *LIMIT_KEYS))}")
        kind = "str" if key in (*MATCH_KEYS, "latency_percentile") else "float"
        if (kind == "str" and not isinstance(value, str)) or (kind == "float" and (
                isinstance(value, bool) or not isinstance(value, int | float))):
            raise ConfigError(f"{where}.{key}: {value!r} is not "
                              f"{'a string' if kind == 'str' else 'a number'}")
    limits = Limits(**{k: (float(v) if k in LIMIT_KEYS and k != "latency_percentile" else v)
                       for k, v in table.items()})
    if limits.empty:
        raise ConfigError(f"{where}: a gate needs at least one of max_latency_ms, max_size_mb, "
                          "max_peak_rss_mb")
    return limits.check(prefix=where)


def to_options(raw: dict):
    """BuildOptions from raw values (config keys; flags and API arguments use the same)."""
    from edgepack.pipeline.options import BuildOptions

    v = {**DEFAULTS, **{k: val for k, val in raw.items() if val is not None}}
    limits = list(v.get("gates", ()))
    top = {k: v[k] for k in LIMIT_KEYS if k in v}
    if any(top.get(k) is not None for k in ("max_latency_ms", "max_size_mb",
                                            "max_peak_rss_mb")):
        limits.insert(0, Limits(**top))
    elif "latency_percentile" in top:
        raise UsageError("--latency-percentile / latency_percentile needs max_latency_ms")
    if "model" not in v:
        raise UsageError("no model: pass MODEL, or run where an edgepack.toml (or a "
                         "pyproject.toml with [tool.edgepack]) declares one, or pass --config")
    return BuildOptions(
        model=Path(v["model"]), profiles=tuple(v.get("profiles") or ()),
        targets=v.get("targets"), precisions=v.get("precisions"),
        data=v.get("data"), calib=v.get("calib"), eval=v.get("eval"),
        input_shapes=dict(v.get("input_shapes") or {}),
        fixed_inputs=dict(v.get("fix_inputs") or {}), output=Path(v["output"]),
        weights=v.get("weights"), trust_pickle=bool(v.get("trust_pickle")),
        emulate=bool(v.get("emulate")), remotes=tuple(v.get("remotes") or ()),
        vendor_wheels=bool(v.get("vendor_wheels")), runs=v.get("runs"),
        min_time=v.get("min_time"), warmup=v["warmup"], bench_rounds=v["bench_rounds"],
        threads=v.get("threads"), jobs=v["jobs"], cache=v.get("cache"),
        rebench=bool(v.get("rebench")),
        max_accuracy_drop=v.get("max_accuracy_drop"), min_cosine=v.get("min_cosine"),
        min_speedup=v.get("min_speedup"), calibration_method=v["calibration"],
        allow_synthetic_calibration=bool(v.get("allow_synthetic_calibration")),
        timeout=float(v["timeout"]),
        target_options={k: val for k, val in (v.get("target_options") or {}).items()
                        if val not in (None, False)},
        strategy=v.get("strategy"), limits=tuple(limits), cells=tuple(v.get("cells") or ()))


def merged(config: dict, flags: dict) -> dict:
    """The config's values with every flag the user gave on top (None/False: not given)."""
    out = dict(config)
    for key, value in flags.items():
        if value is None or value is False:
            continue
        if key == "target_options":
            out[key] = {**(config.get(key) or {}), **value}
        elif key == "gates":
            out[key] = [*(config.get(key) or ()), *value]
        else:
            out[key] = value
    return out


_KIND_SCHEMAS = {
    "str": {"type": "string"}, "path": {"type": "string", "minLength": 1},
    "bool": {"type": "boolean"}, "int": {"type": "integer"}, "float": {"type": "number"},
    "list": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    "shapes": {"type": "object", "additionalProperties": {
        "type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 1}}},
    "fixed": {"type": "object", "additionalProperties": {"oneOf": [
        {"type": "number"}, {"type": "array", "minItems": 1, "items": {"type": "number"}}]}},
    "table": {"type": "object"},
}


def config_schema() -> dict:
    """The JSON Schema of the config file (edgepack/schemas/config.schema.json is this,
    written by ``python -m edgepack.config``; a test keeps the two equal)."""
    from edgepack import settings

    def prop(key: str) -> dict:
        kind, meaning = KEYS[key]
        out = dict(_KIND_SCHEMAS.get(kind, {}))
        row = settings.SETTINGS.get(key)
        if isinstance(row, settings.Number):
            if row.low is not None:
                out["exclusiveMinimum" if row.low_open else "minimum"] = row.low
            if row.high is not None:
                out["exclusiveMaximum" if row.high_open else "maximum"] = row.high
        elif isinstance(row, settings.Choice):
            out = {"enum": list(row.choices)}
        return {**out, "description": meaning}

    gate = {"type": "object", "additionalProperties": False, "properties": {
        **{k: {"type": "string"} for k in MATCH_KEYS},
        **{k: prop(k) for k in LIMIT_KEYS}},
        "anyOf": [{"required": [k]} for k in ("max_latency_ms", "max_size_mb",
                                              "max_peak_rss_mb")]}
    options = {k: prop(k) for k in KEYS if k != "gates"}
    options["gates"] = {"type": "array", "items": gate, "description": KEYS["gates"][1]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://edgepack.dev/schemas/config.schema.json",
        "title": "edgepack config (edgepack.toml, or [tool.edgepack] in pyproject.toml)",
        "description": "Top-level keys apply to every model; [[models]] tables (each with "
                       "its model) override them. Paths are relative to the file.",
        "type": "object", "additionalProperties": False,
        "properties": {**options, "models": {"type": "array", "minItems": 1, "items": {
            "type": "object", "additionalProperties": False, "required": ["model"],
            "properties": options}}},
        "anyOf": [{"required": ["model"]}, {"required": ["models"]}],
    }


if __name__ == "__main__":
    import json

    print(json.dumps(config_schema(), indent=2))
