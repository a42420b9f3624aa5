"""The code's shape: the core names no target, a new target takes five files, imports point
down the floors of docs/ARCHITECTURE.md without cycles, and modules and functions stay small."""

from __future__ import annotations

import ast
import io
import re
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

from edgepack.cpus import all_cpus
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
    """Each target's module (every file of it, where it is a package) and its backend."""
    files = set()
    for name in target_names():
        target = get_target(name)
        module = Path(sys.modules[type(target).__module__].__file__).resolve()
        files |= set(module.parent.glob("*.py")) if module.name == "__init__.py" else {module}
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
    """Follow docs/extending.md's "Adding a target" in a copy of the source tree: the target's
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
    # the profile's runtimes list, whatever it holds, gains the new target
    profile.write_text(re.sub(r'^(runtimes = \[.*)\]$', r'\1, "onnxfile"]',
                              profile.read_text(), count=1, flags=re.MULTILINE))
    pyproject = copy / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("ort = []", "ort = []\nonnxfile = []"))
    after = _tree_files(copy)
    changed = sorted(k for k in after if before.get(k) != after[k])
    # the "Adding a target" list of docs/extending.md, with this target's name in it: what
    # users follow
    assert changed == sorted(_documented_target_files("onnxfile", "x86-64"))
    env = {"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "tests/targets/test_onnxfile.py"], cwd=copy, capture_output=True,
                       text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    help_text = subprocess.run([sys.executable, "-m", "edgepack", "build", "--help"],
                               cwd=copy, capture_output=True, text=True,
                               env={**env, "COLUMNS": "200"}).stdout
    assert "onnxfile" in help_text


def _documented_target_files(name: str, profile: str) -> list[str]:
    """The files the "Adding a target" section of docs/extending.md names, for target ``name``."""
    page = (ROOT / "docs" / "extending.md").read_text()
    section = page.split("## Adding a target", 1)[1].split("\n## ", 1)[0]
    items = re.split(r"^\d+\. ", section.split("\n\n`tests/test_structure.py`")[0],
                     flags=re.MULTILINE)[1:]
    files = []
    for item in items:
        paths = re.findall(r"`([^`]+)`", item)
        path = next((p for p in paths if "/" in p or p.endswith(".toml")), None)
        assert path is not None, f"docs/extending.md 'Adding a target' item names no file: {item}"
        path = path.replace("<name>", name).replace("targets/*.toml", f"targets/{profile}.toml")
        files.append(f"tests/targets/test_{name}.py" if path == "tests/targets/" else path)
    return files


# --------------------------------------------------------------------------- import floors
def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every edgepack module -> the edgepack modules it imports (anywhere in its code)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps |= {resolve(a.name) for a in node.names if a.name.startswith("edgepack")}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and \
                    (node.module or "").startswith("edgepack"):
                for a in node.names:  # "from edgepack.x import y": y may be a module
                    deps.add(resolve(f"{node.module}.{a.name}"))
        graph[name] = deps - {None, name}
    return graph


def floors() -> list[list[str]]:
    """The floors table of docs/ARCHITECTURE.md: module prefixes, lowest floor first."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    table = text.split("<!-- floors", 1)[1].split("<!-- /floors -->", 1)[0]
    rows = [ln for ln in table.splitlines() if ln.startswith("| ") and "`" in ln]
    return [re.findall(r"`(edgepack[\w.]*)`", row.split("|")[2]) for row in rows]


def floor_of(module: str, table: list[list[str]]) -> int | None:
    best = None
    for i, prefixes in enumerate(table):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (i, len(prefix))
    return best[0] if best else None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_imports_have_no_cycle():
    assert cycles(import_graph()) == []


def test_imports_point_down_the_floors_of_the_architecture_doc():
    table, graph = floors(), import_graph()
    assert len(table) >= 8 and all(table)
    unplaced = sorted(m for m in graph if floor_of(m, table) is None)
    assert unplaced == [], "modules missing from docs/ARCHITECTURE.md's floors table"
    up = sorted(f"{m} (floor {floor_of(m, table)}) -> {d} (floor {floor_of(d, table)})"
                for m, deps in graph.items() for d in deps
                if floor_of(d, table) > floor_of(m, table))
    assert up == []


def test_the_checks_catch_a_cycle_and_an_upward_import():
    graph = {"edgepack.a": {"edgepack.b"}, "edgepack.b": {"edgepack.a"}, "edgepack.c": set()}
    assert cycles(graph) == [["edgepack.a", "edgepack.b"]]
    table = [["edgepack.errors"], ["edgepack.pipeline"]]
    assert floor_of("edgepack.pipeline.cells", table) == 1
    assert floor_of("edgepack.errors", table) == 0 and floor_of("edgepack.x", table) is None


# --------------------------------------------------------------------------- sizes
MAX_FUNCTION_LINES = 60
MAX_PIPELINE_MODULE_LINES = 300


def test_no_function_over_60_lines():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines})")
    assert long == []


def test_the_cell_pipeline_stays_in_small_modules():
    big = [f"{p.name}: {n}" for p in sorted((PACKAGE / "pipeline").glob("*.py"))
           if (n := len(p.read_text().splitlines())) > MAX_PIPELINE_MODULE_LINES]
    assert big == []


def test_the_architecture_doc_names_where_new_things_go():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    for thing in ("build option", "target", "importer", "graph rewrite", "gate"):
        assert f"| {thing} |" in text
    for path in re.findall(r"`(edgepack/[\w/]+\.py)`", text):
        if "<" not in path:
            assert (ROOT / path).is_file(), f"docs/ARCHITECTURE.md names {path}, which is gone"


# --------------------------------------------------------------------------- one process door
# modules that run standalone in another interpreter, without edgepack (their own doors):
# the TensorFlow worker runs inside the TensorFlow toolchain's Python
STANDALONE = {"edgepack/importers/tf_worker.py"}
PROCESS_STARTERS = {("subprocess", None), ("os", "system"), ("os", "popen"), ("os", "fork"),
                    ("os", "posix_spawn"), ("os", "posix_spawnp"), ("pty", "spawn"),
                    ("multiprocessing", None), ("asyncio", "create_subprocess_exec"),
                    ("asyncio", "create_subprocess_shell")}


def process_starts(source: str) -> list[int]:
    """Lines of ``source`` that import a process-starting module or call such a function
    (os.exec*/os.spawn* included)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [node.lineno for a in node.names
                      if (a.name.split(".")[0], None) in PROCESS_STARTERS]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            mod = (node.module or "").split(".")[0]
            if (mod, None) in PROCESS_STARTERS or any(
                    (mod, a.name) in PROCESS_STARTERS or a.name.startswith(("exec", "spawn"))
                    and mod == "os" for a in node.names):
                found.append(node.lineno)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            pair = (node.value.id, node.attr)
            if pair in PROCESS_STARTERS or node.value.id == "os" and node.attr.startswith(
                    ("exec", "spawn")):
                found.append(node.lineno)
    return found


def test_every_process_starts_through_procs():
    """docs/ARCHITECTURE.md: "procs is the one door every process goes through"."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in STANDALONE or rel == "edgepack/procs.py":
            continue
        offenders += [f"{rel}:{line}" for line in process_starts(path.read_text())]
    assert offenders == []


def test_the_door_check_sees_each_way_to_start_a_process():
    for code in ("import subprocess", "from subprocess import run", "os.system('x')",
                 "from os import execv", "os.spawnl(0, 'x')", "import multiprocessing",
                 "from os import posix_spawn", "pty.spawn('x')"):
        assert process_starts(code), code
    assert process_starts("import os\nos.path.join('a')") == []


# --------------------------------------------------------------------------- one CPU source
CPU_FACTS = re.compile(r"(?i)\b(cortex-a\d+|neoverse-\w+|0xd[0-9a-f]{2})\b")


def test_cpus_are_described_only_in_their_files():
    """docs/ARCHITECTURE.md: each CPU is described once, in targets/cpus/<cpu>.toml (qemu
    model, MIDR part, caches, features, issue widths, efficiency); no code names one."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for line, text in _code_words(path):
            if text.startswith(("'", '"')) and CPU_FACTS.search(text):
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {text[:60]}")
    assert offenders == []
    for cpu in all_cpus().values():
        assert cpu.qemu and cpu.caches and cpu.features and int(cpu.midr_part, 16)


# --------------------------------------------------------------------------- one writer
CELLISH = re.compile(r"(^|\.)(cell|cached|best|c)$")


def cell_writes(source: str) -> list[int]:
    """Lines that make a cell: ``Cell(...)``, ``Cell.from_json``, ``x.noted(...)``, or
    ``replace(x, ...)`` of a value named like a cell (cell, p.cell, cached, best, c)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Name) and f.id == "Cell" or isinstance(f, ast.Attribute) and (
                f.attr == "noted" or ast.unparse(f) == "Cell.from_json"):
            found.append(node.lineno)
        elif isinstance(f, ast.Name) and f.id == "replace" and node.args and \
                CELLISH.search(ast.unparse(node.args[0])):
            found.append(node.lineno)
    return found


def test_cells_are_made_only_where_the_architecture_doc_says():
    """docs/ARCHITECTURE.md, "One writer per record": Cell is frozen, and the modules that
    make cells are the ones its table lists."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    table = text.split("<!-- cell writers", 1)[1].split("<!-- /cell writers -->", 1)[0]
    listed = set(re.findall(r"^\| `(edgepack[\w.]*)`", table, re.M))
    writers = {_module_name(path) for path in PACKAGE.rglob("*.py")
               if cell_writes(path.read_text())}
    assert writers == listed
    assert cell_writes("replace(p.cell, status=1)\ncell.noted('x')\nCell('a', 'b', 'c')") \
        == [1, 2, 3]
    assert cell_writes("replace(opts, runs=1)") == []


def test_test_helpers_live_in_conftest_or_helpers():
    """STYLE 23: a test module imports no other test module (shared helpers are in
    tests/conftest.py or tests/helpers/)."""
    offenders = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and \
                    re.search(r"(^|\.)test_\w+$", node.module):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.module}")
    assert offenders == []
