"""Device performance without the device: instructions counted on the profile's CPU model under
qemu (edgepack/toolchains/insn_count.c), turned into time by the CPU model (targets/cpus/),
and speed decisions taken on them."""

from __future__ import annotations

import math

import pytest

from edgepack import speed
from edgepack.cpus import Counts, all_cpus, cpu_model, estimate, guest_for
from edgepack.emulation import SYSROOT, count_instructions
from tests.conftest import ROOT, SAMPLES, run_cli
from tests.helpers.reports import cells_in

pytestmark = pytest.mark.skipif(SYSROOT.counter_missing() is not None,
                                reason=str(SYSROOT.counter_missing()))



@pytest.fixture(scope="module")
def two_boards(tmp_path_factory):
    """The 3-channel sample, ORT fp32 and static int8, for the Pi 4 and the Pi 5."""
    out = tmp_path_factory.mktemp("estimates") / "dist"
    r = run_cli("build", SAMPLES / "mobilenet_digits.onnx", "--profile", "rpi4,rpi5",
                "--target", "ort", "--precision", "fp32,int8", "--data",
                SAMPLES / "mobilenet_digits.npz", "--runs", "10", "-o", out)
    return r, out


def test_every_aarch64_cell_gets_a_labelled_device_estimate(two_boards):
    r, out = two_boards
    assert r.returncode == 0, r.stderr
    cells = cells_in(out, "mobilenet_digits")
    for key, cpu, clock in (("rpi4/ort-fp32", "Cortex-A72", 1.8),
                            ("rpi5/ort-fp32", "Cortex-A76", 2.4)):
        device = cells[key]["device"]
        assert device["status"] == "ok" and device["source"] == "estimate"
        assert device["cpu"] == cpu and device["clock_ghz"] == clock and device["threads"] == 4
        assert device["instructions"]["total"] > 1e5 and device["low_ms"] < device["p50_ms"]
        assert device["label"].startswith("p50 ≈") and f"{cpu} @ {clock:g} GHz" in \
            device["label"]
    md = (out / "mobilenet_digits" / "report.md").read_text()
    assert "device p50 estimated for Cortex-A76 @ 2.4 GHz" in md and "≈" in md
    assert "an estimate, not a measurement" in r.stderr + md


def test_int8_is_decided_on_each_profiles_cpu(two_boards):
    """Static int8 uses dot-product kernels on the A76 and not on the A72: each profile's
    decision comes from its own CPU's counts, with the host's ratio beside it."""
    _, out = two_boards
    cells = cells_in(out, "mobilenet_digits")
    ratios = {}
    for profile in ("rpi4", "rpi5"):
        fp32, int8 = cells[f"{profile}/ort-fp32"], cells[f"{profile}/ort-int8"]
        s = int8["speed"]
        assert s["source"] == "estimate" and s["host"]["source"] == "host"
        expected = fp32["device"]["p50_ms"] / int8["device"]["p50_ms"]
        assert math.isclose(s["speedup"], expected, rel_tol=1e-9)
        assert (int8["status"] == "ok") == (s["verdict"] == speed.FASTER)
        gate = next(g for g in int8["gates"] if g["name"] == "speedup")
        assert gate["source"] == "estimate" and gate["limit"] == 1.0
        ratios[profile] = s["speedup"]
    dot = cells["rpi5/ort-int8"]["device"]["instructions"].get("dot", 0)
    assert dot > 0 and cells["rpi4/ort-int8"]["device"]["instructions"].get("dot", 0) == 0
    assert ratios["rpi5"] > ratios["rpi4"]  # the A76's dot product pays
    md = (out / "mobilenet_digits" / "report.md").read_text()
    host = cells["rpi5/ort-int8"]["speed"]["host"]["speedup"]
    assert f"{ratios['rpi5']:.2f}× est (host {host:.2f}×)" in md  # both ratios, side by side


def test_counts_repeat_within_one_percent(two_boards, tmp_path):
    _, out = two_boards
    bundle = out / "mobilenet_digits" / "rpi5" / "ort-int8"
    guest = guest_for("Cortex-A76")
    totals = [count_instructions(bundle, guest, 600, tmp_path / str(i))
              ["counts"]["total"] for i in range(2)]
    assert abs(totals[0] - totals[1]) / totals[0] < 0.01
    built = cells_in(out, "mobilenet_digits")["rpi5/ort-int8"]["device"]["instructions"]["total"]
    assert abs(built - totals[0]) / built < 0.01


def test_a_profile_with_an_unknown_cpu_says_so_and_keeps_host_numbers(tmp_path):
    profile = tmp_path / "odd.toml"
    profile.write_text((ROOT / "targets" / "rpi5.toml").read_text()
                       .replace('name = "rpi5"', 'name = "odd"')
                       .replace('cpu = "Cortex-A76"', 'cpu = "Cortex-X9"'))
    out = tmp_path / "dist"
    r = run_cli("build", SAMPLES / "digits_cnn.onnx", "--profile", profile, "--target", "ort",
                "--precision", "fp32", "--runs", "10", "-o", out)
    assert r.returncode == 0, r.stderr
    device = cells_in(out, "digits_cnn")["odd/ort-fp32"]["device"]
    assert device["status"] == "not estimated"
    assert device["reason"].startswith("no CPU model for 'Cortex-X9' (known: Cortex-A53")
    assert "speed figures are the build host's" in device["reason"]
    assert "odd: not estimated (no CPU model for 'Cortex-X9'" in r.stderr


def test_estimates_follow_the_cpu_model():
    """The model's arithmetic: the busiest class bounds the time; threads divide it."""
    a76 = cpu_model("Cortex-A76")
    counts = Counts(total=4e8, simd=3e8, ldst=5e7, branch=2e7, other=3e7)
    one = estimate(counts, a76, 2.4, 1)
    assert one.bound == "simd"
    assert math.isclose(one.p50_ms, 3e8 / a76.issue["simd"] / a76.efficiency / 2.4e9 * 1e3)
    four = estimate(counts, a76, 2.4, 4)
    assert math.isclose(one.p50_ms / four.p50_ms, a76.speedup(4))
    assert set(all_cpus()) >= {"cortex-a53", "cortex-a72", "cortex-a76", "neoverse-n1"}
    for cpu in all_cpus().values():
        assert cpu.sources.get("issue") and cpu.sources.get("efficiency")


def test_speed_decisions_do_not_flip_on_noise():
    # estimates: a tie within the counts' noise is undecided, not a coin toss
    assert speed.from_estimates(10.0, 5.0, 1.0, "A76").verdict == speed.FASTER
    assert speed.from_estimates(10.0, 9.95, 1.0, "A76").verdict == speed.UNDECIDED
    assert speed.from_estimates(10.0, 12.0, 1.0, "A76").verdict == speed.NOT_FASTER
    # host rounds: three rounds that disagree by 30% cannot show a 5% gain
    noisy = speed.from_host_rounds([1.0, 1.3, 1.0], [0.95, 1.0, 1.2], 1.0)
    assert noisy.verdict == speed.UNDECIDED and noisy.low < 1.0 < noisy.high
    clear = speed.from_host_rounds([2.0, 2.1, 1.9], [1.0, 1.05, 0.98], 1.0)
    assert clear.verdict == speed.FASTER and clear.low > 1.0
    assert speed.from_host_rounds([1.0, 1.0], [1.0, 1.0], 0).verdict == speed.REPORTED


def test_a_board_without_a_claimed_cpu_feature_is_refused(tmp_path):
    """The loopback board emulates a Cortex-A72 (no dot product): it cannot stand for rpi5,
    whose profile claims asimddp. Refused before any work, with one line."""
    from tests.helpers.board import clean_env, loopback_board

    with loopback_board() as board:
        out = tmp_path / "dist"
        r = run_cli("build", SAMPLES / "digits_cnn.onnx", "--profile", "rpi5", "--target",
                    "ort", "--precision", "fp32", "--remote", "rpi5=board", "-o", out,
                    env=clean_env(board))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "lacks CPU feature(s) aes, pmull" in lines[0]
    assert "asimddp" in lines[0] and "profile 'rpi5' claims" in lines[0]
    assert not out.exists()
