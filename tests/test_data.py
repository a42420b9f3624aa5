import numpy as np
import pytest

from edgepack.artifact import TensorSpec
from edgepack.data import load_dataset, synthetic_dataset
from edgepack.errors import DataError

SPEC = [TensorSpec("input", "float32", (1, 3, 4, 4))]


def _npz(tmp_path, **arrays):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    return path


def test_labelled_npz(tmp_path):
    x = np.zeros((5, 3, 4, 4), np.float32)
    ds = load_dataset(_npz(tmp_path, input=x, labels=np.arange(5)), SPEC, "--data")
    assert (ds.kind, ds.samples, len(ds)) == ("labelled", 5, 5)
    assert ds.feed(2)["input"].shape == (1, 3, 4, 4)


def test_npy_for_single_input(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.ones((3, 3, 4, 4), np.float32))
    ds = load_dataset(path, SPEC, "--data")
    assert ds.kind == "unlabelled" and ds.samples == 3


@pytest.mark.parametrize("arrays, match", [
    ({"input": np.zeros((5, 4, 4, 3), np.float32)},
     r"\[5, 4, 4, 3\].*pass \[N, 3, 4, 4\] or \[N, 1, 3, 4, 4\]"),
    ({"input": np.zeros((5, 3, 4, 4), np.float64)}, "dtype float64.*astype"),
    ({"image": np.zeros((5, 3, 4, 4), np.float32)}, "keyed image.*inputs are input"),
    ({"input": np.zeros((5, 3, 4, 4), np.float32), "labels": np.zeros(4, np.int64)},
     "one label per sample \\(5\\)"),
    ({"input": np.full((2, 3, 4, 4), np.nan, np.float32)}, "NaN"),
])
def test_bad_data(tmp_path, arrays, match):
    with pytest.raises(DataError, match=match):
        load_dataset(_npz(tmp_path, **arrays), SPEC, "--data")


def test_missing_and_corrupt(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(tmp_path / "nope.npz", SPEC, "--eval")
    bad = tmp_path / "bad.npz"
    bad.write_text("garbage")
    with pytest.raises(DataError, match="not a readable numpy file"):
        load_dataset(bad, SPEC, "--eval")


def test_synthetic_is_seeded_and_labelled_so():
    a, b = synthetic_dataset(SPEC, seed=3), synthetic_dataset(SPEC, seed=3)
    assert a.kind == "synthetic" and "seed 3" in a.source
    np.testing.assert_array_equal(a.arrays["input"], b.arrays["input"])
