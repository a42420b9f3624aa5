"""The core names no target, and a new target is added in five files."""

from __future__ import annotations

import ast
import io
import re
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

from edgepack.importers import FORMATS
from edgepack.targets import get_target, target_names
from tests.conftest import ROOT

PACKAGE = ROOT / "edgepack"
# converters and runtimes that only their target's files may name
WORDS = ("onnx2tf", "litert", "nncf")


def _plugin_files() -> set[Path]:
    """Targets' own files, and the importers of non-ONNX formats (plugins too: the TFLite
    importer runs LiteRT, as a format of its own)."""
    files = _target_files()
    for path in (PACKAGE / "importers").glob("*.py"):
        if path.name not in ("__init__.py", "onnx.py", "base.py"):
            files.add(path.resolve())
    return files


def _target_files() -> set[Path]:
    files = set()
    for name in target_names():
        target = get_target(name)
        module = sys.modules[type(target).__module__]
        files.add(Path(module.__file__).resolve())
        files.add(target.backend_file().resolve())
    return files


def _code_words(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every name and string in ``path``, comments and docstrings aside."""
    source = path.read_text()
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.update(range(body[0].lineno, body[0].end_lineno + 1))
    found = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.NAME, tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", -1)) \
                and tok.start[0] not in docstrings:
            found.append((tok.start[0], tok.string))
    return found


def test_no_core_module_names_a_target():
    own = _plugin_files()
    words = (*target_names(), *WORDS)
    alternatives = "|".join(map(re.escape, words))
    # a file extension (".tflite") names a model format, not the target
    pattern = re.compile(rf"(?<![A-Za-z0-9_.])({alternatives})(?![A-Za-z0-9])", re.IGNORECASE)
    # importers name model *formats*, one of which shares its name with a target
    formats = {w.strip(".").lower() for k, v in FORMATS.items() for w in (k, v)}
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.resolve() in own:
            continue
        allowed = formats if "importers" in path.relative_to(PACKAGE).parts else set()
        for line, text in _code_words(path):
            if any(m.lower() not in allowed for m in pattern.findall(text)):
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {text[:60]}")
    assert offenders == []


def _tree_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def test_a_new_target_takes_five_files(tmp_path):
    """Follow the README's "Adding a target" in a copy of the source tree: the target's
    module, its device backend, a profile entry, its test, its extra. Nothing else changes,
    and the new target builds, verifies and passes its own test."""
    copy = tmp_path / "src"
    for part in ("edgepack", "targets", "sample_models", "tests/__init__.py",
                 "tests/targets/__init__.py", "pyproject.toml"):
        src, dst = ROOT / part, copy / part
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copyfile)(
            src, dst, **({"ignore": shutil.ignore_patterns("__pycache__")} if src.is_dir()
                         else {}))
    before = _tree_files(copy)
    example = ROOT / "tests" / "plugin_target"
    shutil.copyfile(example / "target.py", copy / "edgepack/targets/onnxfile.py")
    shutil.copyfile(example / "backend.py", copy / "edgepack/device/backends/onnxfile.py")
    shutil.copyfile(example / "check_target.py", copy / "tests/targets/test_onnxfile.py")
    profile = copy / "targets" / "x86-64.toml"
    profile.write_text(profile.read_text().replace(
        'runtimes = ["ort", "openvino", "tflite"]', 'runtimes = ["ort", "openvino", "tflite", '
        '"onnxfile"]'))
    pyproject = copy / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("ort = []", "ort = []\nonnxfile = []"))
    after = _tree_files(copy)
    changed = sorted(k for k in after if before.get(k) != after[k])
    assert changed == ["edgepack/device/backends/onnxfile.py", "edgepack/targets/onnxfile.py",
                       "pyproject.toml", "targets/x86-64.toml", "tests/targets/test_onnxfile.py"]
    env = {"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "tests/targets/test_onnxfile.py"], cwd=copy, capture_output=True,
                       text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    help_text = subprocess.run([sys.executable, "-m", "edgepack", "build", "--help"],
                               cwd=copy, capture_output=True, text=True,
                               env={**env, "COLUMNS": "200"}).stdout
    assert "onnxfile" in help_text
