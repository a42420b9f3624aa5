import numpy as np

from edgepack.profiles import DEFAULT_BUDGETS
from edgepack.verify import accuracy_gates, compare_outputs


def test_one_element_output_cannot_hide_behind_cosine():
    # a probability 0.009 -> 0.14 keeps cosine 1.0 (TOOLCHAIN.md); relative error sees it
    ref = {"p": np.array([[0.009]], np.float32)}
    out = {"p": np.array([[0.14]], np.float32)}
    m = compare_outputs(ref, out, None)["p"]
    assert m["cosine"] > 0.9999 and m["rel_error"] > 10
    failed = [g.name for g in accuracy_gates({"p": m}, DEFAULT_BUDGETS["int8"]) if not g.ok]
    assert failed == ["p.rel_error"]


def test_nan_fails_every_numeric_gate():
    ref = {"y": np.ones((4, 3), np.float32)}
    out = {"y": np.full((4, 3), np.nan, np.float32)}
    gates = accuracy_gates(compare_outputs(ref, out, None), DEFAULT_BUDGETS["fp16"])
    assert {g.name for g in gates if not g.ok} >= {"y.cosine", "y.rel_error"}


def test_shape_mismatch_is_checked_first():
    m = compare_outputs({"y": np.zeros((2, 3))}, {"y": np.zeros((2, 4))}, None)["y"]
    assert m == {"shape_ok": False, "error": "shape [2, 4], expected [2, 3]"}


def test_classifier_numbers_with_labels_and_embedding_without():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((50, 10)).astype(np.float32)
    labels = np.argmax(logits, 1)
    labels[:5] = (labels[:5] + 1) % 10  # the reference gets 45/50 right
    worse = logits.copy()
    worse[5:10] = -worse[5:10]  # flips several top-1 decisions
    m = compare_outputs({"logits": logits}, {"logits": worse}, labels)["logits"]
    assert m["top1_reference"] == 0.9 and m["top1"] < 0.9
    assert 0 < m["top1_agreement"] < 1 and m["top1_drop_points"] > 0
    emb = rng.standard_normal((8, 384)).astype(np.float32)
    e = compare_outputs({"embedding": emb}, {"embedding": emb}, None)["embedding"]
    assert "top1_agreement" not in e and e["cosine"] > 0.99999
