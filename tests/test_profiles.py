import pytest

from edgepack.errors import ProfileError
from edgepack.profiles import list_profiles, load_profile


def test_shipped_profiles_load():
    names = {p.name for p in list_profiles()}
    assert {"rpi4", "rpi5", "generic-arm64", "x86-64"} <= names
    rpi4 = load_profile("rpi4")
    assert (rpi4.arch, rpi4.cpu, rpi4.cores, rpi4.memory_mb) == ("aarch64", "Cortex-A72", 4, 4096)
    assert load_profile("rpi5").cpu == "Cortex-A76"
    assert rpi4.budget("int8").max_top1_drop == 1.0


def test_unknown_profile_names_the_known_ones():
    with pytest.raises(ProfileError, match="unknown profile 'rpi9'.*rpi4"):
        load_profile("rpi9")


def test_user_profile_file(tmp_path):
    text = load_profile("rpi4").source
    path = tmp_path / "mine.toml"
    path.write_text(open(text).read().replace('name = "rpi4"', 'name = "mine"')
                    + "\n[accuracy.fp16]\nmin_cosine = 0.9\n")
    prof = load_profile(path)
    assert prof.name == "mine"
    assert prof.budget("fp16").min_cosine == 0.9
    assert prof.budget("fp32").min_cosine == 0.9999


@pytest.mark.parametrize("extra, match", [
    ('colour = "red"\n', "unknown key.*colour"),
    ('[accuracy.fp32]\nmin_cosin = 0.5\n', r"unknown key\(s\) in \[accuracy.fp32\]: min_cosin"),
    ('[accuracy.fp64]\nmin_cosine = 0.5\n', "fp64.*not a precision"),
])
def test_unknown_keys_are_errors(tmp_path, extra, match):
    src = open(load_profile("x86-64").source).read()
    path = tmp_path / "bad.toml"
    path.write_text(extra + src if not extra.startswith("[") else src + extra)
    with pytest.raises(ProfileError, match=match):
        load_profile(path)


def test_wrong_types_and_invalid_toml(tmp_path):
    src = open(load_profile("x86-64").source).read()
    path = tmp_path / "bad.toml"
    path.write_text(src.replace("threads = 2", 'threads = "two"'))
    with pytest.raises(ProfileError, match="'threads' must be an integer"):
        load_profile(path)
    path.write_text("name = ")
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile(path)


def test_outputs_compared_as_declared(tmp_path):
    src = open(load_profile("x86-64").source).read()
    path = tmp_path / "p.toml"
    path.write_text(src + '\n[accuracy.outputs]\nprob_map = "values"\nctc = "sequence"\n'
                    "\n[accuracy.int8]\nmin_map_iou = 0.8\n")
    prof = load_profile(path)
    assert prof.output_kinds == {"prob_map": "values", "ctc": "sequence"}
    assert prof.budget("int8").min_map_iou == 0.8
    assert prof.budget("int8").max_floor_rel_error == 0.1  # the default
    assert prof.to_dict()["output_kinds"] == {"prob_map": "values", "ctc": "sequence"}
    path.write_text(src + '\n[accuracy.outputs]\nprob_map = "pixels"\n')
    with pytest.raises(ProfileError, match="accuracy.outputs.prob_map"):
        load_profile(path)
