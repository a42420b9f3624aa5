"""Per-device results: bundles verified on the profile's arm64 CPU under qemu (--emulate),
run on a board over SSH (--remote; here a loopback sshd whose python3 is the arm64 sysroot's
under qemu), and installed offline from vendored wheels (--vendor-wheels).

Needs Debian's qemu-user-static, OpenSSH and the emulator toolchain (make test installs
them), and root for the board's throwaway account."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from edgepack import procs
from edgepack.artifact import sha256_file
from edgepack.bundle import write_archive
from edgepack.cpus import all_cpus, guest_for
from edgepack.emulation import SYSROOT
from edgepack.profiles import list_profiles, load_profile
from tests.conftest import SAMPLES, run_cli
from tests.helpers.board import clean_env, install_offline_and_selftest, loopback_board

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def emulator():
    missing = SYSROOT.missing()
    assert missing is None, f"{missing} (make test installs it)"


# --- the emulated CPU follows the profile ----------------------------------------------------

HWCAP_ATOMICS, HWCAP_ASIMDDP = 1 << 8, 1 << 20  # Armv8.1 LSE atomics, Armv8.2 dot product
AUXV = """
import struct
data = open("/proc/self/auxv", "rb").read()
pairs = struct.iter_unpack("<QQ", data)
print(next(v for k, v in pairs if k == 16))  # AT_HWCAP
"""


def _hwcap(cpu: str) -> int:
    done = procs.run([*SYSROOT.command(guest_for(cpu)), "-c", AUXV], what="python", timeout=120,
                     capture=True, env=SYSROOT.env())
    assert done.ok, done.output
    return int(done.output.strip().splitlines()[-1])


def test_every_arm_profile_has_a_cpu_file_and_it_reaches_qemu():
    arm = [p for p in list_profiles() if p.arch == "aarch64"]
    assert {p.name for p in arm} >= {"rpi4", "rpi5"}
    for profile in arm:
        guest = guest_for(profile.cpu, profile.features)
        assert guest is not None and guest.cpu in all_cpus().values(), profile.cpu
        cmd = SYSROOT.command(guest)
        assert cmd[cmd.index("-cpu") + 1] == guest.cpu.qemu
    assert guest_for(load_profile("rpi4").cpu).qemu == "cortex-a72"
    assert guest_for(load_profile("rpi5").cpu).qemu == "cortex-a76"


def test_the_emulated_cpu_has_that_cpus_features_not_qemus_max():
    """A Cortex-A72 (rpi4) has neither LSE atomics nor dot product; an A76 (rpi5) has both:
    the CPU the bundle sees really changes with the profile."""
    a72, a76 = _hwcap("Cortex-A72"), _hwcap("Cortex-A76")
    assert not a72 & HWCAP_ATOMICS and not a72 & HWCAP_ASIMDDP
    assert a76 & HWCAP_ATOMICS and a76 & HWCAP_ASIMDDP


CPU_VIEW = """
import glob
print(open('/proc/cpuinfo').read())
print(open('/sys/devices/system/cpu/cpu0/regs/identification/midr_el1').read())
for d in sorted(glob.glob('/sys/devices/system/cpu/cpu0/cache/index*')):
    print('cache', *(open(d + '/' + k).read().strip() for k in ('level', 'type', 'size')))
"""


def test_the_sysroot_shows_the_profiles_cpu_from_its_cpu_file():
    """Part number, MIDR, caches and features all come from targets/cpus/cortex-a76.toml
    and the profile: one source for the CPU."""
    profile = load_profile("rpi5")
    guest = guest_for(profile.cpu, profile.features)
    done = procs.run([*SYSROOT.command(guest), "-c", CPU_VIEW], what="python", timeout=120,
                     capture=True, env=SYSROOT.env())
    assert done.ok and f"CPU part\t: {guest.cpu.midr_part}" in done.output
    assert f"0x{guest.cpu.midr:016x}" in done.output
    assert "Features\t: " + " ".join(profile.features) in done.output
    caches = [ln.split()[1:] for ln in done.output.splitlines() if ln.startswith("cache ")]
    assert caches == [[str(level), kind, size] for level, kind, size, _ in guest.cpu.caches]


# --- build --emulate, verify --emulate ---------------------------------------------------------

@pytest.fixture(scope="module")
def emulated_build(tmp_path_factory):
    """The 3-channel sample for rpi4, three targets, fp32 and int8, verified on an emulated
    Cortex-A72 as well as here."""
    out = tmp_path_factory.mktemp("emulated")
    r = run_cli("build", SAMPLES / "mobilenet_digits.onnx", "--profile", "rpi4",
                "--device-estimate", "off", "--target", "ort,tflite,openvino",
                "--precision", "fp32,int8",
                "--eval", SAMPLES / "mobilenet_digits.npz",
                "--calib", SAMPLES / "mobilenet_digits_calib.npz", "--emulate",
                "--min-speedup", "0",  # this is about the device's accuracy, not speed
                "--runs", "20", "-o", out, timeout=3600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out / "mobilenet_digits"


def test_build_emulate_gates_accuracy_on_the_profiles_cpu(emulated_build):
    report = json.loads((emulated_build / "report.json").read_text())
    cells = [c for c in report["cells"] if c["status"] == "ok"]
    assert {(c["target"], c["precision"]) for c in cells} >= {
        (t, p) for t in ("ort", "tflite", "openvino") for p in ("fp32", "int8")}
    for cell in cells:
        e = cell["emulated"]
        assert e["status"] == "ok", (cell["name"], e)
        assert e["verified_on"] == "emulated aarch64 (cortex-a72)"
        assert "latency" not in e  # emulated time means nothing
        # the accuracy gates, run again on the CPU (the speed decision is not an accuracy gate)
        assert {g["name"] for g in e["gates"]} == {g["name"] for g in cell["gates"]
                                                   if g["name"] != "speedup"}
        assert all(g["ok"] for g in e["gates"])
        assert "selftest passed" in e["selftest"]
    md = (emulated_build / "report.md").read_text()
    assert "| emulated |" in md and "a72 ok" in md  # host and emulated side by side
    assert "emulated aarch64 (cortex-a72)" in md  # which CPU model was emulated


def test_verify_emulate_passes_on_the_profiles_cpu(emulated_build):
    """`verify --emulate` of a shipped archive (the build already ran every target's
    selftest on the emulated CPU; the tampered test below uses ort)."""
    archive = emulated_build / "rpi4" / "openvino-int8.tar.gz"
    r = run_cli("verify", archive, "--emulate")
    assert r.returncode == 0, r.stderr
    assert "verified (emulated aarch64, cortex-a72)" in r.stdout


def test_verify_emulate_fails_tampered_golden_outputs(emulated_build, tmp_path):
    """Golden outputs changed and every checksum fixed up to match: only running the bundle
    on the CPU can tell, and it does."""
    archive = emulated_build / "rpi4" / "ort-fp32.tar.gz"
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path, filter="data")
    bundle = tmp_path / "ort-fp32"
    golden = bundle / "golden" / "outputs.npz"
    arrays = dict(np.load(golden))
    arrays = {k: v + np.float32(0.5) * np.abs(v).max() for k, v in arrays.items()}
    np.savez(golden, **arrays)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"]["golden/outputs.npz"] = sha256_file(golden)
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    lone = tmp_path / "tampered.tar.gz"
    digest = write_archive(bundle, lone)
    r = run_cli("verify", lone, "--sha256", digest, "--emulate")
    assert r.returncode == 1, r.stderr
    (text,) = r.stderr.strip().splitlines()  # one line; the selftest's own lines on stdout
    assert "verification FAILED (emulated aarch64, cortex-a72): selftest FAILED" in text


def test_a_cell_that_cannot_be_emulated_says_why(tmp_path):
    profile = tmp_path / "odd.toml"
    profile.write_text(Path(load_profile("rpi4").source).read_text()
                        .replace('name = "rpi4"', 'name = "odd"')
                        .replace('cpu = "Cortex-A72"', 'cpu = "Cortex-X9"'))
    r = run_cli("build", SAMPLES / "digits_cnn.onnx", "--profile", f"{profile},x86-64",
                "--target", "ort", "--precision", "fp32", "--emulate", "--runs", "5",
                "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    cells = {c["profile"]: c for c in json.loads(
        (tmp_path / "out" / "digits_cnn" / "report.json").read_text())["cells"]}
    assert cells["odd"]["emulated"] == {
        "status": "not emulated", "reason": "no CPU model for the profile's CPU 'Cortex-X9'"}
    assert cells["x86-64"]["emulated"]["status"] == "not emulated"
    assert cells["x86-64"]["emulated"]["reason"].startswith(
        "x86_64 profile: only aarch64 profiles are emulated")
    md = (tmp_path / "out" / "digits_cnn" / "report.md").read_text()
    assert "odd/ort-fp32: not emulated: no CPU model for the profile's CPU 'Cortex-X9'" in md


# --- a board over SSH --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def board():
    if os.geteuid() != 0:
        pytest.skip("the loopback board needs root (a throwaway account and sshd)")
    with loopback_board() as env:
        yield env


@pytest.fixture(scope="module")
def digits_archive(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    r = run_cli("build", SAMPLES / "digits_cnn.onnx", "--profile", "rpi4",
                "--device-estimate", "off", "--target", "ort",
                "--precision", "fp32", "--eval", SAMPLES / "digits_cnn.npz", "--runs", "5",
                "-o", out)
    assert r.returncode == 0, r.stderr
    return out / "digits_cnn" / "rpi4" / "ort-fp32.tar.gz"


def test_bench_remote_measures_on_the_boards_aarch64(board, digits_archive):
    r = run_cli("bench", digits_archive, "--remote", "board", "--runs", "20",
                env=clean_env(board))
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["machine"]["machine"] == "aarch64"
    assert result["board"]["machine"] == "aarch64" and result["board"]["python"] == "3.11.2"
    assert result["latency_ms"]["runs"] == 20 and result["latency_ms"]["p50"] > 0


def test_verify_remote_runs_the_selftest_on_the_board(board, digits_archive):
    r = run_cli("verify", digits_archive, "--remote", "board", env=clean_env(board))
    assert r.returncode == 0, r.stderr
    assert "verified (on board" in r.stdout


def test_build_remote_reports_the_boards_numbers(board, tmp_path):
    r = run_cli("build", SAMPLES / "digits_cnn.onnx", "--profile", "rpi4,x86-64",
                "--device-estimate", "off", "--target",
                "ort", "--precision", "fp32", "--eval", SAMPLES / "digits_cnn.npz",
                "--runs", "5", "--remote", "rpi4=board", "-o", tmp_path,
                env=clean_env(board))
    assert r.returncode == 0, r.stdout + r.stderr
    cells = {c["profile"]: c for c in json.loads(
        (tmp_path / "digits_cnn" / "report.json").read_text())["cells"]}
    assert cells["x86-64"]["boards"] == []  # rpi4=board: only rpi4's cells go there
    (b,) = cells["rpi4"]["boards"]
    assert b["status"] == "ok" and b["identity"]["machine"] == "aarch64"
    assert b["machine"]["machine"] == "aarch64" and b["latency"]["measured_on"] == "board"
    assert b["latency"]["p50"] > 0 and b["runtime"]["runtime"] == "onnxruntime"
    assert all(g["ok"] for g in b["gates"]) and "selftest passed" in b["selftest"][0]
    md = (tmp_path / "digits_cnn" / "report.md").read_text()
    row = next(ln for ln in md.splitlines() if "↳ on board (aarch64" in ln)
    assert f"{b['latency']['p50']:.3f}" in row
    assert "## Boards (--remote)" in md
    # nothing is left behind on the board
    left = subprocess.run(["sh", "-c", "ls -d /tmp/edgepack.* 2>/dev/null"],
                          capture_output=True, text=True).stdout.split()
    assert not [d for d in left if Path(d).owner() != "root"]


def test_the_board_decides_the_speed_when_there_is_one(board, tmp_path):
    """board > estimate > host: with a board of the profile, int8 is shipped or declined on
    the board's own p50s, though the device estimate is there too; the report says so."""
    r = run_cli("build", SAMPLES / "digits_cnn.onnx", "--profile", "rpi4",
                "--device-estimate", "on", "--target", "ort", "--precision", "fp32,int8",
                "--eval", SAMPLES / "digits_cnn.npz", "--calib", SAMPLES / "digits_cnn_calib.npz",
                "--runs", "20", "--remote", "rpi4=board", "-o", tmp_path, env=clean_env(board))
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads((tmp_path / "digits_cnn" / "report.json").read_text())
    cells = {c["precision"]: c for c in report["cells"]}
    int8 = cells["int8"]
    assert int8["status"] in ("ok", "declined"), int8["reason"]
    assert int8["device"]["status"] == "ok"  # an estimate was there, and was not used
    assert int8["speed"]["source"] == "board" and "measured on board" in int8["speed"]["detail"]
    fp32_p50 = cells["fp32"]["boards"][0]["latency"]["p50"]
    assert int8["speed"]["detail"].startswith(f"measured on board: fp32 p50 {fp32_p50:.4g} ms")
    decided = [a for a in int8["attempts"] if a["speed"]]
    assert decided and all(a["speed"]["source"] == "board" for a in decided)
    gate = next(g for g in int8["gates"] if g["name"] == "speedup")
    assert gate["source"] == "board" and gate["gate"] == "min_speedup (measured on the board)"
    if int8["status"] == "ok":  # its board run was taken once, in the speed check
        (b,) = int8["boards"]
        assert b["latency"]["p50"] == pytest.approx(fp32_p50 / int8["speed"]["speedup"])
    md = (tmp_path / "digits_cnn" / "report.md").read_text()
    assert f"{int8['speed']['speedup']:.2f}× board" in md


def test_a_board_with_a_different_host_key_is_refused(board, digits_archive, tmp_path):
    config = Path(board["EDGEPACK_SSH_CONFIG"])
    hosts = tmp_path / "known_hosts"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(tmp_path / "impostor")], check=True)
    key = (tmp_path / "impostor.pub").read_text().split()
    hosts.write_text(f"[127.0.0.1]:{board['port']} {key[0]} {key[1]}\n")
    other = tmp_path / "ssh_config"
    other.write_text(config.read_text().replace(str(config.parent / "known_hosts"),
                                                str(hosts)))
    r = run_cli("verify", digits_archive, "--remote", "board",
                env={"EDGEPACK_SSH_CONFIG": str(other)})
    assert r.returncode == 2
    line = r.stderr.strip().splitlines()[-1]
    assert "Host key verification failed" in line and "Traceback" not in r.stderr


def test_an_unreachable_board_is_a_clear_error_within_the_timeout(digits_archive, tmp_path):
    start = time.monotonic()
    r = run_cli("bench", digits_archive, "--remote", "nobody@127.0.0.1:1",
                env={"EDGEPACK_SSH_CONFIG": "/dev/null"})
    assert time.monotonic() - start < 60
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach nobody@127.0.0.1:1" in lines[0]
    assert "Connection refused" in lines[0]


def test_a_board_without_the_runtime_shows_its_own_error(tmp_path, digits_archive):
    if os.geteuid() != 0:
        pytest.skip("the loopback board needs root")
    with loopback_board(runtime=False) as bare:
        r = run_cli("build", SAMPLES / "digits_cnn.onnx", "--profile", "rpi4",
                    "--device-estimate", "off", "--target",
                    "ort", "--precision", "fp32", "--runs", "5", "--remote", "board",
                    "-o", tmp_path / "out", env=clean_env(bare))
    assert r.returncode == 1
    cell = json.loads((tmp_path / "out" / "digits_cnn" / "report.json").read_text())["cells"][0]
    assert cell["status"] == "failed"
    assert "the selftest failed on board" in cell["reason"]
    assert "No module named 'numpy'" in cell["reason"]  # the board's own line
    assert not (tmp_path / "out" / "digits_cnn" / "rpi4" / "ort-fp32").exists()


# --- offline install from vendored wheels ------------------------------------------------------

def test_vendored_wheels_install_offline_on_a_clean_arm64_python(tmp_path):
    r = run_cli("build", SAMPLES / "digits_cnn.onnx", "--profile", "rpi5",
                "--device-estimate", "off", "--target",
                "ort,tflite", "--precision", "fp32", "--runs", "5", "--vendor-wheels",
                "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    for target in ("ort", "tflite"):
        bundle = tmp_path / "out" / "digits_cnn" / "rpi5" / f"{target}-fp32"
        wheels = sorted(p.name for p in (bundle / "wheels").glob("*.whl"))
        assert any("aarch64" in w for w in wheels)
        manifest = json.loads((bundle / "manifest.json").read_text())
        assert manifest["wheels"] == wheels
        assert all(f"wheels/{w}" in manifest["files"] for w in wheels)
        assert "pip install --no-index --find-links wheels" in (bundle / "README.md").read_text()
        install_offline_and_selftest(bundle, guest_for("Cortex-A76"), tmp_path / target)


def test_a_pin_with_no_wheel_for_the_profile_fails_its_cell(tmp_path):
    old = tmp_path / "old.toml"  # a board with glibc 2.26: onnxruntime 1.32 needs 2.28
    old.write_text(Path(load_profile("rpi4").source).read_text()
                   .replace('name = "rpi4"', 'name = "old"')
                   .replace('glibc = "2.36"', 'glibc = "2.26"'))
    r = run_cli("build", SAMPLES / "digits_cnn.onnx", "--profile", old, "--target", "ort",
                "--precision", "fp32", "--vendor-wheels", "-o", tmp_path / "out")
    assert r.returncode == 1
    cell = json.loads((tmp_path / "out" / "digits_cnn" / "report.json").read_text())["cells"][0]
    assert cell["status"] == "failed"
    assert cell["reason"].startswith("no wheel of onnxruntime==") and "glibc 2.26" in cell["reason"]

