"""Every option of ``edgepack build`` (and ``plan``), declared once.

Each :class:`Option` gives its name (the config key, the API keyword and the
:class:`BuildOptions` attribute), kind, default, range, flag, help, help panel, and what it
changes: the prepare step's cache key, each cell's cache key, the report's settings.
:class:`BuildOptions`, the config file's keys and JSON Schema, value checks, the typer
signature of ``build``/``plan``, the report's settings and the cache keys are derived from
:data:`OPTIONS`: adding an option is one entry there, plus the code that uses its value.

``None`` as a value means "not given": the profile's (or target's) default applies.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from edgepack import settings
from edgepack.errors import EdgepackError, ShapeError, UsageError
from edgepack.gates import Limits
from edgepack.remote import Remote
from edgepack.settings import Choice, Number


class ConfigError(UsageError):
    """The config file is unreadable, or a key is unknown or has the wrong type."""


class KindError(ConfigError):
    """A config value of the wrong type (the message gets the option's meaning added)."""


# --------------------------------------------------------------------------- kinds
class Kind:
    """How one kind of value is written on the command line and in a config file."""

    words = "a value"  # for "... is not <words>"
    metavar = "TEXT"  # in --help
    schema: dict = {}
    cli_type: object = str | None  # the typer annotation (None: not a flag)
    py_type = "object"  # the BuildOptions field's type (annotation text), None aside

    def from_cli(self, value, flag: str):
        """The flag's parsed value (None: not given)."""
        return value

    def from_config(self, value, where: str, base: Path | None):
        """The config value converted, or ConfigError naming ``where``."""
        raise NotImplementedError

    def report(self, value):
        """The value as JSON-able data for the report and the cache key."""
        return value

    def bad(self, value, where: str) -> KindError:
        return KindError(f"{where}: {value!r} is not {self.words}")


class Text(Kind):
    words = "a string"
    py_type = "str"
    schema = {"type": "string"}

    def from_config(self, value, where, base):
        if not isinstance(value, str) or not value:
            raise self.bad(value, where)
        return value


class File(Kind):
    """A path, relative to the config file's folder; ``entry_point`` allows file.py:func."""

    words = "a string (a path)"
    metavar = "PATH"
    py_type = "Path"
    schema = {"type": "string", "minLength": 1}
    cli_type = Path | None

    def __init__(self, entry_point: bool = False) -> None:
        self.entry_point = entry_point

    def from_config(self, value, where, base):
        if not isinstance(value, str) or not value:
            raise self.bad(value, where)
        head, sep, tail = value.partition(":")
        if not (self.entry_point and sep and head.endswith(".py")):
            head, sep, tail = value, "", ""
        written = Path(head)
        path = written if written.is_absolute() or base is None else base / head
        if not written.is_absolute() and path.is_absolute() and path.is_relative_to(Path.cwd()):
            path = path.relative_to(Path.cwd())  # reports show what the user wrote
        return Path(f"{path}{sep}{tail}")

    def report(self, value):
        return None if value is None else str(value)


class Switch(Kind):
    words = "true or false"
    py_type = "bool"
    metavar = ""
    schema = {"type": "boolean"}
    cli_type = bool

    def from_cli(self, value, flag):
        return True if value else None  # an absent switch gives nothing, not False

    def from_config(self, value, where, base):
        if not isinstance(value, bool):
            raise self.bad(value, where)
        return value


class _Number(Kind):
    cli_type = str | None  # parsed here: the error says what is wrong in edgepack's words
    parse = staticmethod(float)  # the Python type a flag's text becomes

    def from_cli(self, value, flag):
        if value is None:
            return None
        try:
            return self.parse(value.strip())
        except ValueError:
            raise UsageError(f"{flag}: {value!r} is not {self.words}") from None


class Integer(_Number):
    words = "an integer"
    py_type = "int"
    metavar = "N"
    schema = {"type": "integer"}
    parse = staticmethod(int)

    def from_config(self, value, where, base):
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.bad(value, where)
        return value


class Real(_Number):
    words = "a number"
    py_type = "float"
    metavar = "X"
    schema = {"type": "number"}

    def from_config(self, value, where, base):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.bad(value, where)
        return float(value)


class Names(Kind):
    """A list of names: comma-separated or repeated flags, a TOML list (or one string)."""

    words = "a list of strings"
    py_type = "tuple[str, ...]"
    schema = {"type": "array", "items": {"type": "string"}}
    cli_type = list[str] | None

    def from_cli(self, value, flag):
        if value is None:
            return None
        return tuple(v.strip() for item in value for v in item.split(",") if v.strip())

    def from_config(self, value, where, base):
        if isinstance(value, str):  # strict: a list is due, and docs/ci.md says so
            raise KindError(f"{where}: {value!r} is a string; write a list, e.g. "
                            f"[{', '.join(repr(v.strip()) for v in value.split(','))}]")
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.bad(value, where)
        return tuple(v.strip() for v in value if v.strip())

    def report(self, value):
        return None if value is None else list(value)


class Hosts(Names):
    """Boards over SSH, each ``[PROFILE=][user@]host[:port]``: read by ``remote.parse_remote``
    as soon as they are given (flag, config file or API) into :class:`remote.Remote` records,
    so a value ssh could take as an option never gets further than this, and nothing reads
    an address again."""

    py_type = "tuple[Remote, ...]"

    def from_cli(self, value, flag):
        return self.parsed(super().from_cli(value, flag), flag, UsageError)

    def from_config(self, value, where, base):
        hosts = super().from_config(value, where, base)
        return self.parsed(hosts, where, ConfigError, indexed=True)

    @staticmethod
    def parsed(hosts, where: str, error: type[EdgepackError], indexed: bool = False):
        from edgepack.remote import Remote, parse_remote

        if hosts is None:
            return None
        return tuple(h if isinstance(h, Remote) else
                     parse_remote(h, f"{where}[{i}]" if indexed else where, error)
                     for i, h in enumerate(hosts))

    def report(self, value):
        return None if value is None else [str(r) for r in value]


@dataclass(frozen=True)
class CellId:
    """A cell of the plan, as ``--cell`` names it: ``[MODEL/]PROFILE/TARGET[-PRECISION]``
    (``rest``: TARGET, or the cell's name TARGET-PRECISION[-VARIANT])."""

    profile: str
    rest: str
    model: str | None = None

    @classmethod
    def parse(cls, text: str, where: str = "--cell") -> CellId:
        """UsageError for anything but 2 or 3 non-empty parts separated by '/'."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise UsageError(f"{where} {text}: write PROFILE/TARGET[-PRECISION] (prefixed "
                             "MODEL/ when the config has several models; see: edgepack plan)")
        return cls(parts[-2], parts[-1], parts[0] if len(parts) == 3 else None)

    def __str__(self) -> str:
        return "/".join(p for p in (self.model, self.profile, self.rest) if p)


class CellIds(Names):
    """``--cell`` values, parsed once into :class:`CellId` records."""

    py_type = "tuple[CellId, ...]"

    def from_cli(self, value, flag):
        names = super().from_cli(value, flag)
        return None if names is None else tuple(CellId.parse(n, flag) for n in names)


class Shapes(Kind):
    """Input shapes: ``NAME=1,3,224,224`` flags, or a table ``NAME = [1, 3, 224, 224]``."""

    words = "a table of integer lists"
    py_type = "dict[str, tuple[int, ...]]"
    schema = {"type": "object", "additionalProperties": {
        "type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 1}}}
    cli_type = list[str] | None

    def from_cli(self, value, flag):
        return parse_input_shapes(value) or None

    def from_config(self, value, where, base):
        if not isinstance(value, dict) or not all(
                isinstance(v, list) and v and all(isinstance(d, int) and not isinstance(d, bool)
                                                  and d >= 1 for d in v)
                for v in value.values()):
            raise self.bad(value, where)
        return {k: tuple(v) for k, v in value.items()}

    def report(self, value):
        return {k: list(v) for k, v in (value or {}).items()}


class Fixed(Kind):
    """Frozen inputs: ``NAME=VALUE[,VALUE...]`` flags, or a table of numbers/number lists."""

    words = "a table of numbers or number lists"
    py_type = "dict[str, tuple[float, ...]]"
    schema = {"type": "object", "additionalProperties": {"oneOf": [
        {"type": "number"}, {"type": "array", "minItems": 1, "items": {"type": "number"}}]}}
    cli_type = list[str] | None

    def from_cli(self, value, flag):
        return parse_fixed_inputs(value) or None

    def from_config(self, value, where, base):
        def numbers(v) -> tuple[float, ...] | None:
            v = v if isinstance(v, list) else [v]
            ok = v and all(isinstance(x, int | float) and not isinstance(x, bool)
                           and math.isfinite(x) for x in v)
            return tuple(float(x) for x in v) if ok else None

        if not isinstance(value, dict) or any(numbers(v) is None for v in value.values()):
            raise self.bad(value, where)
        return {k: numbers(v) for k, v in value.items()}

    def report(self, value):
        return {k: list(v) for k, v in (value or {}).items()}


class Table(Kind):
    words = "a table"
    py_type = "dict[str, object]"
    schema = {"type": "object"}
    cli_type = None

    def from_config(self, value, where, base):
        if not isinstance(value, dict):
            raise self.bad(value, where)
        return dict(value)


class Keyed(Kind):
    """A table of named values, each checked against its own row of settings.SETTINGS:
    ``KEY=VALUE`` flags (repeatable; a list of numbers comma-separated; a number may be a
    fraction such as 1/255), or a TOML table. ``lists`` names the keys that take one or more
    numbers."""

    words = "a table"
    metavar = "KEY=VALUE"
    cli_type = list[str] | None
    py_type = "dict[str, object]"

    def __init__(self, keys: tuple[str, ...], lists: tuple[str, ...] = ()) -> None:
        self.keys, self.lists = keys, lists

    @property
    def schema(self) -> dict:
        props = {}
        for key in self.keys:
            row = settings.SETTINGS[key]
            one = {"enum": list(row.choices)} if isinstance(row, Choice) else \
                {"type": "integer" if row.kind is int else "number", **_bounds(row)}
            props[key] = ({"oneOf": [one, {"type": "array", "minItems": 1, "items": one}]}
                          if key in self.lists else one) | {"description": row.meaning}
        return {"type": "object", "additionalProperties": False, "properties": props}

    def _known(self, key: str, where: str, error: type[EdgepackError]) -> None:
        import difflib

        if key not in self.keys:
            close = difflib.get_close_matches(key, self.keys, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise error(f"{where}: unknown key '{key}'{hint}; keys: {', '.join(self.keys)}")

    def from_cli(self, value, flag):
        if value is None:
            return None
        out = {}
        for item in value:
            key, sep, text = (part.strip() for part in item.partition("="))
            if not sep or not key or not text:
                raise UsageError(f"{flag} {item!r}: write KEY=VALUE, e.g. {flag} resize=256")
            self._known(key, flag, UsageError)
            out[key] = self._parsed(key, text, f"{flag} {key}")
        return self.checked(out, flag, UsageError)

    def _parsed(self, key: str, text: str, where: str):
        row = settings.SETTINGS[key]
        if isinstance(row, Choice):
            return text
        parts = text.split(",") if key in self.lists else [text]
        try:
            numbers = [_number(p, row.kind) for p in parts]
        except (ValueError, ZeroDivisionError):
            words = "a list of numbers" if key in self.lists else \
                "an integer" if row.kind is int else "a number"
            raise UsageError(f"{where}: {text!r} is not {words}") from None
        return tuple(numbers) if key in self.lists else numbers[0]

    def from_config(self, value, where, base):
        if not isinstance(value, dict):
            raise self.bad(value, where)
        out = {}
        for key, v in value.items():
            self._known(key, where, ConfigError)
            row, many = settings.SETTINGS[key], key in self.lists
            items = v if many and isinstance(v, list) else [v]
            if isinstance(row, Choice):
                ok, words = isinstance(v, str), "a string"
            else:
                kinds = int if row.kind is int else int | float
                ok = bool(items) and all(isinstance(x, kinds) and not isinstance(x, bool)
                                         for x in items)
                words = "a number or a list of numbers" if many else \
                    "an integer" if row.kind is int else "a number"
            if not ok:
                raise ConfigError(f"{where}.{key}: {v!r} is not {words} ({row.meaning})")
            out[key] = tuple(items) if many else v
        return self.checked(out, where, ConfigError)

    def checked(self, value: dict, where: str, error: type[EdgepackError]) -> dict:
        """Each value within its row's range (each number of a list); ``error`` naming
        ``where`` and the key otherwise."""
        out = {}
        for key, v in value.items():
            self._known(key, where, error)
            row = settings.SETTINGS[key]
            at = f"{where} {key}" if where.startswith("-") else f"{where}.{key}"
            if key in self.lists:
                items = tuple(v) if isinstance(v, list | tuple) else (v,)
                out[key] = tuple(row.check(x, at, error) for x in items)
            else:
                out[key] = row.check(v, at, error)
        return out

    def report(self, value):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in (value or {}).items()}


def _number(text: str, kind: type) -> float:
    text = text.strip()
    if kind is int:
        return int(text)
    top, sep, bottom = text.partition("/")
    return float(top) / float(bottom) if sep else float(text)


def _bounds(row: Number) -> dict:
    """A number row's range as JSON Schema keywords."""
    out = {}
    if row.low is not None:
        out["exclusiveMinimum" if row.low_open else "minimum"] = row.low
    if row.high is not None:
        out["exclusiveMaximum" if row.high_open else "maximum"] = row.high
    return out


class GateList(Kind):
    """``[[gates]]``: release gates narrowed to some cells (config file only)."""

    words = "an array of tables"
    cli_type = None
    py_type = "tuple[Limits, ...]"

    def from_config(self, value, where, base):
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.bad(value, where)
        return tuple(gate_from_table(g, f"{where}[{i}]") for i, g in enumerate(value))

    def report(self, value):
        return [vars(g) for g in value or ()]


def parse_input_shapes(items: list[str] | None) -> dict[str, tuple[int, ...]]:
    """Parse ``NAME=1,3,224,224`` strings into {name: shape}; ShapeError when malformed."""
    shapes: dict[str, tuple[int, ...]] = {}
    for item in items or []:
        name, sep, dims = item.partition("=")
        try:
            shape = tuple(int(d) for d in dims.split(","))
        except ValueError:
            shape = ()
        if not sep or not name or not shape or min(shape) < 1:
            raise ShapeError(f"--input-shape '{item}' is not NAME=D1,D2,... with positive "
                             "integers (e.g. --input-shape input=1,3,224,224)")
        shapes[name] = shape
    return shapes


def parse_fixed_inputs(items: list[str] | None) -> dict[str, tuple[float, ...]]:
    """Parse ``NAME=VALUE[,VALUE...]`` strings; ShapeError when malformed."""
    fixed: dict[str, tuple[float, ...]] = {}
    for item in items or []:
        name, sep, text = item.partition("=")
        try:
            values = tuple(float(v) for v in text.split(","))
        except ValueError:
            values = ()
        if not sep or not name or not values or not all(map(math.isfinite, values)):
            raise ShapeError(f"--fix-input '{item}' is not NAME=VALUE[,VALUE...] with finite "
                             "numbers (e.g. --fix-input sample_rate=16000)")
        fixed[name] = values
    return fixed


def gate_from_table(table: dict, where: str) -> Limits:
    """One ``[[gates]]`` table as Limits; ConfigError naming the key on any problem."""
    import difflib

    from edgepack.gates import LIMIT_KEYS, MATCH_KEYS

    keys = (*MATCH_KEYS, *LIMIT_KEYS)
    for key, value in table.items():
        if key not in keys:
            close = difflib.get_close_matches(key, keys, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{where}.{key}: unknown gate key{hint}; gate keys: "
                              f"{', '.join(keys)}")
        text = key in (*MATCH_KEYS, "latency_percentile")
        if (text and not isinstance(value, str)) or (not text and (
                isinstance(value, bool) or not isinstance(value, int | float))):
            raise ConfigError(f"{where}.{key}: {value!r} is not "
                              f"{'a string' if text else 'a number'}")
    limits = Limits(**{k: (float(v) if k in LIMIT_KEYS and k != "latency_percentile" else v)
                       for k, v in table.items()})
    if limits.empty:
        raise ConfigError(f"{where}: a gate needs at least one of max_latency_ms, max_size_mb, "
                          "max_peak_rss_mb")
    return limits.check(prefix=where, error=ConfigError)


# --------------------------------------------------------------------------- options
PREPARE, CELL = "prepare", "cell"  # which cache key an option's value enters


@dataclass(frozen=True)
class Option:
    """One option: its name is the config key, the API keyword and the BuildOptions field."""

    name: str
    kind: Kind
    meaning: str  # what the value is, in a few words (config errors say it)
    help: str  # the flag's help and the config schema's description
    flags: tuple[str, ...] = ()  # the first is the long flag; () = no flag
    default: object = None
    check: str | Number | Choice | None = None  # a row of settings.SETTINGS, or its own
    panel: str = "Build"
    config: bool = True  # a config-file key (and an API keyword)
    cache: str | None = None  # PREPARE or CELL: its value enters that cache key
    report: bool = False  # recorded in the report's settings
    report_key: str | None = None  # its name there, where an older one is kept
    metavar: str | None = None
    argument: bool = False  # the positional argument (MODEL)

    @property
    def flag(self) -> str:
        return self.flags[0] if self.flags else self.name

    @property
    def row(self) -> Number | Choice | None:
        return settings.SETTINGS[self.check] if isinstance(self.check, str) else self.check

    def check_value(self, value, where: str, error: type[EdgepackError] = UsageError):
        """``value`` checked against the option's range (each item of a list; each key of
        a table of values)."""
        if isinstance(self.kind, Keyed) and isinstance(value, dict):
            return self.kind.checked(value, where, error)
        row = self.row
        if row is None or value is None:
            return value
        if isinstance(value, tuple):
            return tuple(row.check(v, where, error) for v in value)
        return row.check(value, where, error)

    @property
    def default_value(self):
        return self.default() if callable(self.default) else self.default

    @property
    def annotation(self) -> str:
        """The BuildOptions field's type: the kind's, or None where there is no default."""
        return self.kind.py_type if self.default is not None else f"{self.kind.py_type} | None"


# the keys of --preprocess / [preprocessing], each a row of settings.SETTINGS
PREPROCESS_KEYS = ("resize", "crop", "scale", "mean", "std", "channels", "layout",
                   "sample_rate", "frame_length", "max_tokens")

# the help panels of `edgepack build --help`
_IN, _MATRIX, _DATA, _ACC = "Input", "Matrix", "Data", "Accuracy and speed"
_BENCH, _DEV, _GATES, _OUT = "Benchmark", "Devices", "Release gates", "Output and cache"

OPTIONS: dict[str, Option] = {o.name: o for o in (
    Option("model", File(entry_point=True), "the model file or entry point file.py:function",
           "The model: .onnx, .tflite, .keras/.h5, a SavedModel folder, a TorchScript .pt, an "
           "ExportedProgram .pt2, or a PyTorch entry point file.py:make_model (default: the "
           "models of ./edgepack.toml or pyproject.toml's [tool.edgepack]).",
           argument=True, panel=_IN),
    Option("weights", File(), "a PyTorch state dict for an entry point",
           "PyTorch entry point: a state dict to load (weights_only=True).",
           ("--weights",), panel=_IN),
    Option("trust_pickle", Switch(), "load a pickled PyTorch model (runs its code)",
           "Load a pickled PyTorch model (torch.load without weights_only): this RUNS ARBITRARY "
           "CODE from the file; only for files you trust.",
           ("--trust-pickle",), panel=_IN, cache=PREPARE),
    Option("input_shapes", Shapes(), "a table NAME = [d1, d2, ...] fixing dynamic inputs",
           "Fix a dynamic input: NAME=1,3,224,224 (repeatable).",
           ("--input-shape",), default=dict, panel=_IN, cache=PREPARE, report=True,
           metavar="NAME=DIMS"),
    Option("fix_inputs", Fixed(), "a table NAME = value or [values] freezing inputs",
           "Freeze an input to a constant, NAME=VALUE[,VALUE...] (repeatable): it leaves the "
           "bundles, and control flow on it folds away.",
           ("--fix-input",), default=dict, panel=_IN, cache=PREPARE, report=True,
           report_key="fixed_inputs", metavar="NAME=VALUES"),
    Option("profiles", Names(), "device profile names or TOML paths",
           "Device profile names or TOML paths; repeatable or comma-separated (default: the "
           "host's kind, x86-64 or generic-arm64).",
           ("--profile", "-p"), default=tuple, panel=_MATRIX, metavar="NAME"),
    Option("targets", Names(), "targets (runtimes)",
           "Targets (runtimes) to build (default: the profile's runtimes).",
           ("--target", "-t"), panel=_MATRIX, metavar="NAME"),
    Option("precisions", Names(),
           "precisions: fp32, fp16, int8-dynamic, int8, int4-weights, or auto",
           "fp32, fp16, int8-dynamic, int8, int4-weights (where the runtime has int4 "
           "kernels), or auto: every precision, the fastest within budget chosen (default: "
           "the profile's).",
           ("--precision",), check="precision", panel=_MATRIX, metavar="NAME"),
    Option("cells", CellIds(), "cells of the plan to build",
           "Build only this cell of the plan: PROFILE/TARGET (all its precisions) or "
           "PROFILE/TARGET-PRECISION, prefixed MODEL/ with several models; repeatable (see: "
           "edgepack plan).",
           ("--cell",), config=False, panel=_MATRIX, metavar="ID"),
    Option("strategy", Text(), "only try strategies whose name contains this",
           "Only try lowering strategies whose name contains this, e.g. a converter version "
           "(see report.json 'attempts').",
           ("--strategy",), panel=_MATRIX, cache=CELL, report=True, metavar="TEXT"),
    Option("target_options", Table(), "target options by name, e.g. {int8_io = true}",
           "Target options by name, e.g. {int8_io = true} (on the command line: each target's "
           "own flags).",
           default=dict, cache=CELL, report=True),
    Option("data", File(), "calibration and evaluation data",
           "Calibration and evaluation data: .npz/.npy, a folder of images or WAV files, or "
           "a .txt file.",
           ("--data",), panel=_DATA, cache=PREPARE, metavar="PATH"),
    Option("calib", File(), "calibration data",
           "Calibration data (overrides --data).",
           ("--calib",), panel=_DATA, cache=PREPARE, metavar="PATH"),
    Option("eval", File(), "evaluation data",
           "Evaluation data (overrides --data).",
           ("--eval",), panel=_DATA, cache=PREPARE, metavar="PATH"),
    Option("preprocessing", Keyed(PREPROCESS_KEYS, lists=("mean", "std")),
           "how images, WAV files or text become the model's input",
           "resize, crop, scale, mean, std, channels, layout, sample_rate, frame_length, "
           "max_tokens (repeatable; else inferred).",
           ("--preprocess",), default=dict, panel=_DATA, cache=PREPARE, metavar="KEY=VALUE"),
    Option("tokenizer", File(), "a tokenizer.json for text data",
           "A tokenizer.json for a .txt file's lines.",
           ("--tokenizer",), panel=_DATA, cache=PREPARE, metavar="FILE"),
    Option("labels", File(), "class names, one per line (line i is class i)",
           "Class names: line i is class i (else sorted folders).",
           ("--labels",), panel=_DATA, cache=PREPARE, metavar="FILE"),
    Option("calibration", Text(), "minmax, entropy or percentile",
           "Static int8 calibration: minmax (default), entropy or percentile.",
           ("--calibration",), default="minmax", check="calibration", panel=_DATA, cache=CELL,
           report=True, report_key="calibration_method", metavar="METHOD"),
    Option("allow_synthetic_calibration", Switch(), "allow static int8 calibrated on random data",
           "Allow static int8 calibrated on random data.",
           ("--allow-synthetic-calibration",), panel=_DATA, cache=PREPARE),
    Option("max_accuracy_drop", Real(), "max top-1 drop in points",
           "Max top-1 drop vs the reference, in points (overrides the profile).",
           ("--max-accuracy-drop",), check="max_top1_drop", panel=_ACC, cache=CELL),
    Option("min_cosine", Real(), "min cosine per output",
           "Min cosine similarity per output (overrides the profile).",
           ("--min-cosine",), check="min_cosine", panel=_ACC, cache=CELL),
    Option("min_speedup", Real(), "min speedup over fp32",
           "Min speedup of fp16/int8 cells over fp32, same profile and target (overrides the "
           "profile; 0 reports it without gating).",
           ("--min-speedup",), check="min_speedup", panel=_ACC, cache=CELL),
    Option("runs", Integer(), "timed runs per bundle",
           "Timed runs per bundle.",
           ("--runs",), check="runs", panel=_BENCH, report=True),
    Option("min_time", Real(), "seconds to time each bundle for",
           "Time each bundle for at least this many seconds (default 1).",
           ("--min-time",), check="min_time", panel=_BENCH, report=True),
    Option("warmup", Integer(), "untimed warm-up runs",
           "Untimed warm-up runs (default 10).",
           ("--warmup",), default=10, check="warmup", panel=_BENCH, report=True),
    Option("threads", Integer(), "inference threads",
           "Threads for inference (default: the profile's).",
           ("--threads",), check="threads", panel=_BENCH, cache=CELL, report=True),
    Option("bench_rounds", Integer(), "benchmark processes per bundle",
           "Benchmark each bundle in this many fresh processes (default 1); the median round is "
           "reported, and report compare uses their spread as the noise.",
           ("--bench-rounds",), default=1, check="bench_rounds", panel=_BENCH, report=True),
    Option("device_estimate", Text(), "auto, on or off",
           "Estimate each bundle's latency on the profile's CPU from instructions counted under "
           "qemu on that CPU's model: auto (default) for profiles whose CPU the build host is "
           "not, when the emulator is installed; on for every profile (an error if it cannot "
           "run); off for host timing only. Speed decisions use the estimate where there is one.",
           ("--device-estimate",), default="auto", check="device_estimate", panel=_ACC,
           cache=CELL, report=True, metavar="auto|on|off"),
    Option("emulate", Switch(), "verify aarch64 bundles under qemu",
           "Also verify aarch64 profiles' bundles on their CPU under qemu (accuracy only; "
           "needs: edgepack toolchain install emulator).",
           ("--emulate",), panel=_DEV, cache=CELL),
    Option("remotes", Hosts(), "boards over SSH: [PROFILE=][user@]host[:port]",
           "[PROFILE=][user@]host[:port]: also run each bundle (selftest, evaluation, bench) on "
           "a board over SSH; repeatable, boards run in parallel.",
           ("--remote",), default=tuple, panel=_DEV, cache=CELL, metavar="HOST"),
    Option("vendor_wheels", Switch(), "put the device's wheels into each bundle",
           "Put the wheels of each bundle's requirements.txt, for the profile's platform and "
           "Python, into the bundle (offline install on the device); fails a cell whose pins "
           "have no wheel for the profile.",
           ("--vendor-wheels",), panel=_DEV, cache=CELL),
    Option("max_latency_ms", Real(), "release gate on latency",
           "Release gate: fail a cell whose latency (--latency-percentile, default p50) exceeds "
           "this.",
           ("--max-latency-ms",), check="max_latency_ms", panel=_GATES, cache=CELL),
    Option("latency_percentile", Text(), "which latency max_latency_ms gates",
           "The latency --max-latency-ms gates: p50, p90, p99, mean or max.",
           ("--latency-percentile",), check="latency_percentile", panel=_GATES, cache=CELL),
    Option("max_size_mb", Real(), "release gate on the bundle's size",
           "Release gate: fail a cell whose model files exceed this many MiB.",
           ("--max-size-mb",), check="max_size_mb", panel=_GATES, cache=CELL),
    Option("max_peak_rss_mb", Real(), "release gate on peak memory",
           "Release gate: fail a cell whose benchmark peak RSS exceeds this many MiB.",
           ("--max-peak-rss-mb",), check="max_peak_rss_mb", panel=_GATES, cache=CELL),
    Option("gates", GateList(), "an array of tables: release gates for some cells",
           "An array of tables: release gates for some cells (profile, target, precision narrow "
           "them).",
           default=tuple, cache=CELL),
    Option("output", File(), "the output folder",
           "Output folder (default: dist).",
           ("--output", "-o"), default=lambda: Path("dist"), panel=_OUT, metavar="DIR"),
    Option("cache", File(), "the content-addressed build cache folder",
           "A build cache folder: cells whose model, data, settings and tools are unchanged are "
           "restored from it instead of rebuilt.",
           ("--cache",), panel=_OUT, report=True, metavar="DIR"),
    Option("rebench", Switch(), "re-time cells restored from the cache",
           "Time cells restored from the cache again (else their cached latency is reported, "
           "marked as such).",
           ("--rebench",), panel=_OUT),
    Option("jobs", Integer(), "profile/target groups built in parallel",
           "Lower and verify this many profile/target groups at once (default 1); benchmarks "
           "always run one at a time.",
           ("--jobs", "-j"), default=1, check="jobs", panel=_OUT, report=True),
    Option("timeout", Real(), "seconds for each lowering, evaluation, selftest or benchmark",
           "Seconds allowed for each lowering, evaluation, selftest or benchmark (at least 10; "
           "default 900).",
           ("--timeout",), default=900.0, check="timeout", panel=_OUT, report=True),
)}


# --------------------------------------------------------------------------- BuildOptions
@dataclass(frozen=True)
class BuildOptions:
    """Everything ``edgepack build`` takes: one field per entry of :data:`OPTIONS`, in its
    order, typed as its kind says (``python -m edgepack.options --fields`` prints these
    lines from the table; tests/test_options.py keeps them in step). None: not given, the
    profile's or target's default applies."""

    model: Path | None = None
    weights: Path | None = None
    trust_pickle: bool | None = None
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    fix_inputs: dict[str, tuple[float, ...]] = field(default_factory=dict)
    profiles: tuple[str, ...] = field(default_factory=tuple)
    targets: tuple[str, ...] | None = None
    precisions: tuple[str, ...] | None = None
    cells: tuple[CellId, ...] | None = None
    strategy: str | None = None
    target_options: dict[str, object] = field(default_factory=dict)
    data: Path | None = None
    calib: Path | None = None
    eval: Path | None = None
    preprocessing: dict[str, object] = field(default_factory=dict)
    tokenizer: Path | None = None
    labels: Path | None = None
    calibration: str = "minmax"
    allow_synthetic_calibration: bool | None = None
    max_accuracy_drop: float | None = None
    min_cosine: float | None = None
    min_speedup: float | None = None
    runs: int | None = None
    min_time: float | None = None
    warmup: int = 10
    threads: int | None = None
    bench_rounds: int = 1
    device_estimate: str = "auto"
    emulate: bool | None = None
    remotes: tuple[Remote, ...] = field(default_factory=tuple)
    vendor_wheels: bool | None = None
    max_latency_ms: float | None = None
    latency_percentile: str | None = None
    max_size_mb: float | None = None
    max_peak_rss_mb: float | None = None
    gates: tuple[Limits, ...] = field(default_factory=tuple)
    output: Path = field(default_factory=lambda: Path("dist"))
    cache: Path | None = None
    rebench: bool | None = None
    jobs: int = 1
    timeout: float = 900.0

    @property
    def name(self) -> str:
        """The model's name: its output folder under ``output``."""
        return Path(str(self.model).split(":")[0]).stem

    @property
    def limits(self) -> tuple[Limits, ...]:
        """Release gates: the top-level limits (flags or config keys), then [[gates]]."""
        top = Limits(max_latency_ms=self.max_latency_ms, max_size_mb=self.max_size_mb,
                     max_peak_rss_mb=self.max_peak_rss_mb,
                     latency_percentile=self.latency_percentile or "p50")
        return ((top,) if not top.empty else ()) + tuple(self.gates)


def field_lines() -> list[str]:
    """BuildOptions' field declarations as the option table derives them."""
    def default(o: Option) -> str:
        if o.default is None:
            return "None"
        if callable(o.default):
            value = o.default()
            factory = f"lambda: Path({json.dumps(str(value))})" if isinstance(value, Path) \
                else type(value).__name__
            return f"field(default_factory={factory})"
        return json.dumps(o.default) if isinstance(o.default, str) else repr(o.default)

    return [f"    {o.name}: {o.annotation} = {default(o)}" for o in OPTIONS.values()]


def build_options(values: dict) -> BuildOptions:
    """BuildOptions from raw values by option name (None or absent: the default)."""
    given = {k: v for k, v in values.items() if v is not None}
    unknown = sorted(set(given) - set(OPTIONS))
    if unknown:
        raise UsageError(f"unknown option(s): {', '.join(unknown)}")
    if "model" not in given:
        raise UsageError("no model: pass MODEL, or run where an edgepack.toml (or a "
                         "pyproject.toml with [tool.edgepack]) declares one, or pass --config")
    given["model"] = Path(given["model"])
    return BuildOptions(**given)


def check_ranges(opts: BuildOptions) -> None:
    """UsageError naming the flag for any value outside its option's range."""
    for option in OPTIONS.values():
        option.check_value(getattr(opts, option.name), option.flag)


def report_settings(opts: BuildOptions) -> dict:
    """The report's ``settings``: every option marked ``report``, and the release gates."""
    out = {o.report_key or o.name: o.kind.report(getattr(opts, o.name))
           for o in OPTIONS.values() if o.report}
    out["limits"] = [vars(x) for x in opts.limits]
    return out


def cache_values(opts: BuildOptions, which: str) -> dict:
    """The values of the options entering one cache key (PREPARE or CELL); files by their
    content, not their path."""
    from edgepack.artifact import sha256_file, sha256_folder

    out = {}
    for o in OPTIONS.values():
        if o.cache != which:
            continue
        value = getattr(opts, o.name)
        if isinstance(o.kind, File):
            path = Path(value) if value is not None else None
            value = sha256_file(path) if path is not None and path.is_file() else \
                sha256_folder(path) if path is not None and path.is_dir() else None
        out[o.name] = o.kind.report(value) if not isinstance(o.kind, File) else value
    return out


# --------------------------------------------------------------------------- the docs table
def markdown_table() -> str:
    """The table of every user-facing value and its range that docs/cli.md quotes (build flags
    from the option table, profile keys from settings.SETTINGS)."""
    flags = {}
    for o in OPTIONS.values():
        if o.row is not None and o.flags:
            flags.setdefault(o.row.key, o.flags[0])
        if isinstance(o.kind, Keyed) and o.flags:
            for key in o.kind.keys:
                flags.setdefault(key, f"{o.flags[0]} {key}=")
    for key, flag in settings.OTHER_FLAGS.items():
        flags.setdefault(key, flag)
    lines = ["| value | flag | profile key | range | meaning |", "|---|---|---|---|---|"]
    for s in settings.SETTINGS.values():
        unit = f" {s.unit}" if isinstance(s, Number) and s.unit else ""
        flag = flags.get(s.key)
        lines.append(f"| `{s.key}` | {f'`{flag}`' if flag else '-'} | "
                     f"{f'`{s.profile_key}`' if s.profile_key else '-'} | "
                     f"{s.describe()}{unit} | {s.meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--fields"]:
        print("\n".join(field_lines()))
    else:
        print(markdown_table(), end="")
