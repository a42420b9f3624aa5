"""The core stays light: no heavy framework is imported by `import edgepack` or `--help`."""

import subprocess
import sys

HEAVY = ("tensorflow", "torch", "openvino", "nncf", "onnx2tf")

PROBE = """
import sys
{code}
print("LOADED:" + " ".join(m for m in {heavy!r} if m in sys.modules))
"""


def _loaded_after(code: str) -> list[str]:
    script = PROBE.format(code=code, heavy=HEAVY)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("LOADED:")]
    assert line, out.stdout + out.stderr
    return line[0][len("LOADED:"):].split()


def test_import_edgepack_is_light():
    assert _loaded_after("import edgepack, edgepack.errors, edgepack.profiles") == []


def test_cli_help_is_light():
    code = (
        "sys.argv = ['edgepack', '--help']\n"
        "from edgepack.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass"
    )
    assert _loaded_after(code) == []


def test_probe_sees_a_heavy_import():
    # the probe itself works: importing openvino directly is seen
    assert _loaded_after("import openvino") == ["openvino"]
