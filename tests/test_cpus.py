"""The CPU models' arithmetic (edgepack/cpus.py): no emulator needed."""

from __future__ import annotations

import math

import pytest

from edgepack.cpus import Counts, _parse, all_cpus, cpu_model, estimate, interval
from edgepack.errors import ProfileError


def test_the_interval_holds_every_figure_within_the_uncertainty():
    """u is the largest relative error |estimate - published| / published of the checks: an
    estimate 35% under or over a figure still has the figure inside its interval."""
    low, high = interval(100.0, 0.35)
    assert math.isclose(low, 100 / 1.35) and math.isclose(high, 100 / 0.65)
    for published in (100 / 1.35, 100 / 0.65, 100.0):  # estimate = published * (1 -+ 0.35)
        assert low * (1 - 1e-9) <= published <= high * (1 + 1e-9)
    assert not low <= 100 / 0.6 <= high  # missed by 40%: outside
    assert interval(50.0, 0.0) == (50.0, 50.0)


def test_an_estimate_carries_its_cpus_uncertainty():
    a72 = cpu_model("Cortex-A72")
    counts = Counts(total=3e8, simd=2e8, ldst=5e7, branch=1e7, other=4e7)
    guess = estimate(counts, a72, 1.8, 1)
    assert (guess.low_ms, guess.high_ms) == interval(guess.p50_ms, a72.uncertainty)
    record = guess.to_json()
    assert record["uncertainty"] == a72.uncertainty and record["model_version"] >= 2
    assert record["label"].endswith(f"±{a72.uncertainty * 100:.0f}%)")


def test_cpu_files_are_checked():
    good = {"name": "X", "qemu": "x", "midr_part": "0x1", "features": [], "efficiency": 0.7,
            "caches": [[1, "Data", "32K", "core"]],
            "uncertainty": 0.3, "thread_speedup": {"4": 1.7}, "sources": {},
            "issue": {"decode": 3, "simd": 1, "ldst": 1, "branch": 1, "other": 2}}
    assert _parse(good, "x.toml").uncertainty == 0.3
    for bad in ({"uncertainty": 1.0}, {"uncertainty": -0.1}, {"efficiency": 1.2}):
        with pytest.raises(ProfileError, match="uncertainty in \\[0, 1\\)"):
            _parse({**good, **bad}, "x.toml")
    for cpu in all_cpus().values():  # the shipped ones: every constant has its source
        assert 0 <= cpu.uncertainty < 1 and 0 < cpu.efficiency <= 1
        assert all(cpu.sources.get(k) for k in ("issue", "efficiency", "uncertainty",
                                                 "thread_speedup"))


def test_verify_emulate_shows_the_guest_the_build_emulated():
    """`verify --emulate` reads the bundle's manifest profile; the guest it resolves is the
    build's for the same profile: the same CPU file and the profile's own features."""
    from edgepack.cli.verify import _guest
    from edgepack.cpus import guest_for
    from edgepack.profiles import list_profiles

    for profile in (p for p in list_profiles() if p.arch == "aarch64"):
        manifest = {k: getattr(profile, k) for k in ("name", "arch", "cpu")}
        assert _guest(manifest) == guest_for(profile.cpu, profile.features), profile.name
    odd = {"name": "not-a-shipped-profile", "arch": "aarch64", "cpu": "Cortex-A76"}
    assert _guest(odd).features == cpu_model("Cortex-A76").features  # the CPU file's own
