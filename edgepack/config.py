"""The config file (``edgepack.toml`` or ``[tool.edgepack]`` in pyproject.toml): the options of
:mod:`edgepack.options` as TOML keys.

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
Paths are relative to the file's folder. Unknown keys, wrong types and values out of range
are a ConfigError (exit 2) naming the file and the key's location, e.g.
``edgepack.toml: models[0].precison: unknown key (did you mean 'precisions'?)``.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass
from pathlib import Path

from edgepack.options import OPTIONS, ConfigError, Keyed, KindError, Option

CONFIG_NAMES = ("edgepack.toml",)
KEYS: dict[str, Option] = {name: o for name, o in OPTIONS.items() if o.config}

__all__ = ["CONFIG_NAMES", "KEYS", "Config", "ConfigError", "check_values", "config_schema",
           "find_config", "load_config", "merged"]


@dataclass(frozen=True)
class Config:
    """A parsed config file: the checked option values of each model."""

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
    """Parse and check a config file; ConfigError naming the file and key on any problem."""
    from edgepack.settings import read_toml

    data = read_toml(path, "config", ConfigError)
    shown = _shown(path)
    where = f"{shown}:"
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("edgepack")
        where = f"{shown}: [tool.edgepack]"
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: no [tool.edgepack] table")
    models = data.pop("models", None)
    shared = check_values(data, where, path.parent)
    if models is None:
        if "model" not in shared:
            raise ConfigError(f"{_at(where, 'model')}: missing; set model = \"FILE\" or add "
                              "[[models]] tables")
        return Config(path, [shared])
    if not isinstance(models, list) or not all(isinstance(m, dict) for m in models) \
            or not models:
        raise ConfigError(f"{_at(where, 'models')}: must be an array of tables ([[models]])")
    if "model" in shared:
        raise ConfigError(f"{_at(where, 'model')}: set at the top level and in [[models]]; put "
                          "it in each [[models]] table")
    out = []
    for i, table in enumerate(models):
        own = check_values(table, _at(where, f"models[{i}]"), path.parent)
        if "model" not in own:
            raise ConfigError(f"{_at(where, f'models[{i}]')}: has no model = \"FILE\"")
        gates = (*shared.get("gates", ()), *own.get("gates", ()))
        out.append({**shared, **own, "gates": gates})
    return Config(path, out)


def _shown(path: Path) -> str:
    """The config file as the user would write it: relative to the working folder if in it."""
    absolute = path.absolute()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _at(where: str, key: str) -> str:
    """``FILE: a.b`` key paths: the first key after the colon, the rest joined by dots."""
    return f"{where} {key}" if where.endswith(":") else f"{where}.{key}"


def check_values(table: dict, where: str, base: Path | None) -> dict:
    """Each key known, of its kind and in its range; paths made relative to ``base``."""
    out = {}
    for key, value in table.items():
        option = KEYS.get(key)
        if option is None:
            close = difflib.get_close_matches(key, KEYS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else \
                f"; known keys: {', '.join(KEYS)}"
            raise ConfigError(f"{_at(where, key)}: unknown key{hint}")
        at = _at(where, key)
        try:
            converted = option.kind.from_config(value, at, base)
        except KindError as e:
            raise ConfigError(f"{e} ({option.meaning})") from None
        out[key] = option.check_value(converted, at, ConfigError)
    return out


def merged(config: dict, flags: dict) -> dict:
    """The config's values with every flag the user gave on top (None: not given)."""
    out = dict(config)
    for key, value in flags.items():
        if value is None:
            continue
        if key == "target_options" or isinstance(getattr(KEYS.get(key), "kind", None), Keyed):
            out[key] = {**(config.get(key) or {}), **value}  # per key: flags override keys
        elif key == "gates":
            out[key] = (*(config.get(key) or ()), *value)
        else:
            out[key] = value
    return out


def config_schema() -> dict:
    """The JSON Schema of the config file (edgepack/schemas/config.schema.json is this,
    written by ``python -m edgepack.config``; a test keeps the two equal)."""
    from edgepack.gates import LIMIT_KEYS, MATCH_KEYS

    gate = {"type": "object", "additionalProperties": False, "properties": {
        **{k: {"type": "string"} for k in MATCH_KEYS},
        **{k: _schema(OPTIONS[k]) for k in LIMIT_KEYS}},
        "anyOf": [{"required": [k]} for k in ("max_latency_ms", "max_size_mb",
                                              "max_peak_rss_mb")]}
    options = {k: _schema(o) for k, o in KEYS.items() if k != "gates"}
    options["gates"] = {"type": "array", "items": gate, "description": OPTIONS["gates"].help}
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


def _schema(option: Option) -> dict:
    from edgepack import settings

    out = dict(option.kind.schema)
    row = option.row
    if isinstance(row, settings.Number):
        if row.low is not None:
            out["exclusiveMinimum" if row.low_open else "minimum"] = row.low
        if row.high is not None:
            out["exclusiveMaximum" if row.high_open else "maximum"] = row.high
    elif isinstance(row, settings.Choice):
        item = {"enum": list(row.choices)}
        out = {"type": "array", "items": item} if out.get("type") == "array" else item
    return {**out, "description": option.help}


if __name__ == "__main__":
    import json

    print(json.dumps(config_schema(), indent=2))
