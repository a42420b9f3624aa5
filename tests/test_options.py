"""Every build option is declared once (edgepack/options.py) and everything else follows."""

from __future__ import annotations

import dataclasses
import inspect
import json
import shutil
import subprocess
import sys
from pathlib import Path

from edgepack.config import KEYS, config_schema
from edgepack.options import OPTIONS, BuildOptions, build_options, field_lines, report_settings
from tests.conftest import ROOT, make_matmul_model

NEW_OPTION = '''    Option("demo_knob", Integer(), "a demo knob",
           "A demo knob for the structure test.", ("--demo-knob",), default=3,
           check=Number("demo_knob", int, 1, 9, "a demo knob"), panel=_BENCH, cache=CELL,
           report=True),
'''

CHECK = '''
import json, sys
from pathlib import Path
from edgepack.config import config_schema, load_config
from edgepack.errors import EdgepackError
from edgepack.options import build_options, cache_values, report_settings
from edgepack.pipeline.options import validate

out = {"schema": config_schema()["properties"].get("demo_knob")}
opts = build_options({"model": Path("m.onnx"), "demo_knob": 5})
out["report"] = report_settings(opts).get("demo_knob")
out["cache"] = cache_values(opts, "cell").get("demo_knob")
out["default"] = build_options({"model": Path("m.onnx")}).demo_knob
for bad in (0, 10):
    try:
        validate(build_options({"model": Path("m.onnx"), "demo_knob": bad}))
        out[f"validate {bad}"] = "accepted"
    except EdgepackError as e:
        out[f"validate {bad}"] = str(e)
Path("edgepack.toml").write_text('model = "m.onnx"\\ndemo_knob = "x"\\n')
try:
    load_config(Path("edgepack.toml"))
except EdgepackError as e:
    out["config"] = str(e)
print(json.dumps(out))
'''


def test_adding_an_option_touches_one_declaration(tmp_path):
    """One Option entry added to a copy of the source (and its typed BuildOptions field, the
    line ``python -m edgepack.options --fields`` prints for it): the flag is in --help, the
    key in the config schema and the config check, the range in validation, the value in the
    report's settings and the cell cache key. No other file changes."""
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "edgepack", copy / "edgepack",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "targets", copy / "targets")
    options = copy / "edgepack" / "options.py"
    text = options.read_text()
    anchor = '    Option("output", File(),'
    assert text.count(anchor) == 1
    options.write_text(text.replace(anchor, NEW_OPTION + anchor))
    env = {"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "COLUMNS": "200"}
    fields = subprocess.run([sys.executable, "-m", "edgepack.options", "--fields"], cwd=copy,
                            capture_output=True, text=True, env=env, timeout=120)
    assert fields.returncode == 0, fields.stderr
    (line,) = [ln for ln in fields.stdout.splitlines() if "demo_knob" in ln]
    assert line == "    demo_knob: int = 3"
    text = options.read_text()
    options.write_text(text.replace("    output: Path = ", f"{line}\n    output: Path = ", 1))
    help_text = subprocess.run([sys.executable, "-m", "edgepack", "build", "--help"], cwd=copy,
                               capture_output=True, text=True, env=env, timeout=120).stdout
    assert "--demo-knob" in help_text and "A demo knob for the structure test" in help_text
    done = subprocess.run([sys.executable, "-c", CHECK], cwd=tmp_path, capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["schema"]["minimum"] == 1 and found["schema"]["maximum"] == 9
    assert found["report"] == 5 and found["cache"] == 5 and found["default"] == 3
    assert found["validate 0"].startswith("--demo-knob: 0 is out of range")
    assert found["validate 10"].startswith("--demo-knob: 10 is out of range")
    assert found["config"].endswith("demo_knob: 'x' is not an integer (a demo knob)")
    model = make_matmul_model(tmp_path / "m.onnx")
    flag = subprocess.run([sys.executable, "-m", "edgepack", "build", str(model),
                           "--demo-knob", "12", "-o", str(tmp_path / "out")], cwd=copy,
                          capture_output=True, text=True, env=env, timeout=120)
    assert flag.returncode == 2 and "--demo-knob: 12 is out of range" in flag.stderr
    assert not (tmp_path / "out").exists()


def test_every_config_key_is_an_option_with_a_schema_entry():
    schema = config_schema()["properties"]
    assert set(KEYS) == {n for n, o in OPTIONS.items() if o.config}
    assert set(schema) == {*KEYS, "models"}
    for name, option in KEYS.items():
        assert schema[name]["description"] == option.help
    assert "cells" not in KEYS  # --cell is a command-line choice, not a config key


def test_a_list_where_a_string_is_given_is_refused(tmp_path):
    from edgepack.config import load_config
    from edgepack.options import ConfigError

    config = tmp_path / "edgepack.toml"
    config.write_text('model = "m.onnx"\ntargets = "ort"\n')
    try:
        load_config(config)
    except ConfigError as e:
        assert str(e) == (f"{config}: targets: 'ort' is a string; write a list, e.g. ['ort'] "
                          "(targets (runtimes))")
    else:
        raise AssertionError("targets = \"ort\" was accepted")


def test_build_options_fields_are_typed_and_in_step_with_the_table():
    """BuildOptions declares each option's field with its kind's type, in the table's order
    (a type checker sees them), with the table's default: a drift fails here."""
    fields = dataclasses.fields(BuildOptions)
    assert [f.name for f in fields] == list(OPTIONS)
    for f in fields:
        option = OPTIONS[f.name]
        assert f.type == option.annotation, f.name
        if f.default_factory is not dataclasses.MISSING:
            assert f.default_factory() == option.default_value, f.name
        else:
            assert f.default == option.default, f.name
    assert field_lines() == [ln for ln in inspect.getsource(BuildOptions).splitlines()
                             if ln.startswith("    ") and ": " in ln and " = " in ln
                             and not ln.strip().startswith(('"', "#", "top", "return"))]


def test_boards_and_cells_are_parsed_once_where_they_are_given():
    from edgepack.remote import Remote

    opts = build_options({"model": Path("m.onnx"),
                          "remotes": OPTIONS["remotes"].kind.from_cli(["rpi4=pi@board:2222"],
                                                                      "--remote"),
                          "cells": OPTIONS["cells"].kind.from_cli(["m/rpi4/ort-int8"],
                                                                  "--cell")})
    (board,) = opts.remotes
    assert board == Remote("board", "pi", 2222, "rpi4") and str(board) == "rpi4=pi@board:2222"
    (cell,) = opts.cells
    assert (cell.model, cell.profile, cell.rest) == ("m", "rpi4", "ort-int8")
    assert report_settings(build_options({"model": Path("m.onnx"), "remotes": opts.remotes,
                                          "cache": Path("c")}))["cache"] == "c"
