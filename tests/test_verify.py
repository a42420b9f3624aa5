import numpy as np

from edgepack.device import core
from edgepack.profiles import DEFAULT_BUDGETS
from edgepack.verify import accuracy_gates, compare_outputs, detect_kind, output_kinds


def _samples(arr):
    """An array of N samples as the per-sample list the comparison takes."""
    return list(np.asarray(arr))


def test_one_element_output_cannot_hide_behind_cosine():
    # a probability 0.009 -> 0.14 keeps cosine 1.0 (TOOLCHAIN.md); relative error sees it
    ref = {"p": _samples([[0.009]])}
    out = {"p": _samples([[0.14]])}
    m = compare_outputs(ref, out, None)["p"]
    assert m["cosine"] > 0.9999 and m["rel_error"] > 10
    failed = [g.name for g in accuracy_gates({"p": m}, DEFAULT_BUDGETS["int8"]) if not g.ok]
    assert failed == ["p.rel_error"]


def test_nan_fails_every_numeric_gate():
    ref = {"y": _samples(np.ones((4, 3), np.float32))}
    out = {"y": _samples(np.full((4, 3), np.nan, np.float32))}
    m = compare_outputs(ref, out, None)
    assert m["y"]["nonfinite"] == 12
    gates = accuracy_gates(m, DEFAULT_BUDGETS["fp16"])
    assert {g.name for g in gates if not g.ok} >= {"y.cosine", "y.rel_error"}


def test_shape_mismatch_is_checked_first():
    m = compare_outputs({"y": _samples(np.zeros((2, 3)))}, {"y": _samples(np.zeros((2, 4)))},
                        None)["y"]
    assert m == {"shape_ok": False, "error": "shape [4], expected [3] (sample 0)"}


def test_integer_outputs_compare_exactly_and_zero_outputs_pass():
    ref = {"shape": _samples(np.array([[1, 3, 8, 8]] * 4, np.int64)),
           "zeros": _samples(np.zeros((4, 5), np.float32))}
    same = compare_outputs(ref, ref, None)
    assert same["shape"]["match"] == 1.0 and same["zeros"]["cosine"] == 1.0
    assert all(g.ok for g in accuracy_gates(same, DEFAULT_BUDGETS["fp32"]))
    off = {"shape": _samples(np.array([[1, 3, 8, 9]] * 4, np.int64)), "zeros": ref["zeros"]}
    m = compare_outputs(ref, off, None)
    assert m["shape"]["mismatches"] == 4 and m["shape"]["match"] == 0.75
    assert [g.name for g in accuracy_gates(m, DEFAULT_BUDGETS["int8"]) if not g.ok] == [
        "shape.match"]


def test_near_zero_output_is_judged_by_absolute_error():
    # a reference of pure noise around zero has no direction: a tiny absolute error passes
    ref = [np.array([1e-9, -2e-9, 3e-9], np.float32)]
    m = core.compare(ref, [np.zeros(3, np.float32)])
    assert m["cosine"] == 0.0 and m["max_abs"] < core.ATOL
    assert [c[0] for c in core.output_checks("y", m, {"min_cosine": 0.99,
            "max_rel_error": 2.0, "min_match": 1.0})] == ["y.rel_error"]


def test_classifier_numbers_with_labels_and_embedding_without():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((50, 1, 10)).astype(np.float32)  # 50 samples of [1, 10]
    labels = np.argmax(logits[:, 0], 1)
    labels[:5] = (labels[:5] + 1) % 10  # the reference gets 45/50 right
    worse = logits.copy()
    worse[5:10] = -worse[5:10]  # flips several top-1 decisions
    m = compare_outputs({"logits": _samples(logits)}, {"logits": _samples(worse)},
                        labels)["logits"]
    assert m["top1_reference"] == 0.9 and m["top1"] < 0.9
    assert 0 < m["top1_agreement"] < 1 and m["top1_drop_points"] > 0
    emb = _samples(rng.standard_normal((8, 1, 384)).astype(np.float32))
    e = compare_outputs({"embedding": emb}, {"embedding": emb}, None)["embedding"]
    assert "top1_agreement" not in e and e["cosine"] > 0.99999


def _map_with_flips(rng, samples=6, size=32, flips=3):
    """Steep probability maps (blobs near 1, background near 0) and a copy in which a few
    pixels on the blobs' edges swing across the threshold, as int8 does to such maps."""
    yy, xx = np.mgrid[:size, :size]
    ref = np.zeros((samples, 1, 1, size, size), np.float32)
    for i in range(samples):
        cy, cx = rng.uniform(8, size - 8, 2)
        ref[i, 0, 0] = 1 / (1 + np.exp(np.minimum((yy - cy) ** 2 + (xx - cx) ** 2 - 36, 50)))
    out = ref + rng.normal(0, 0.002, ref.shape).astype(np.float32)
    edge = np.argwhere((ref > 0.3) & (ref < 0.7))
    for i, _, _, y, x in edge[rng.choice(len(edge), flips, replace=False)]:
        out[i, 0, 0, y, x] = 1 - ref[i, 0, 0, y, x]
    return np.clip(out, 0, 1), ref


def test_a_dense_map_is_held_to_a_map_budget_not_to_its_max_relative_error():
    out, ref = _map_with_flips(np.random.default_rng(0))
    assert detect_kind(_samples(ref))[0] == "map"
    budget = DEFAULT_BUDGETS["int8"]
    plain = compare_outputs({"text_map": _samples(ref)}, {"text_map": _samples(out)}, None)
    assert [g.name for g in accuracy_gates(plain, budget) if not g.ok] == ["text_map.rel_error"]
    kinds = output_kinds({"text_map": _samples(ref)}, {})
    m = compare_outputs({"text_map": _samples(ref)}, {"text_map": _samples(out)}, None, kinds)
    assert m["text_map"]["kind"] == "map" and m["text_map"]["kind_source"].startswith("detected")
    assert m["text_map"]["rel_error"] > budget.max_rel_error  # still measured and reported
    assert "top1_agreement" not in m["text_map"]  # a map's rows are not class scores
    gates = accuracy_gates(m, budget)
    assert all(g.ok for g in gates), [g.describe() for g in gates]
    assert {g.name for g in gates} == {"text_map.cosine", "text_map.floor_rel_error",
                                       "text_map.map_iou"}
    # the map budget still fails a map that is wrong: half its blob pixels off
    broken = np.where(ref > 0.3, ref * (np.arange(ref.size).reshape(ref.shape) % 2), ref)
    m = compare_outputs({"text_map": _samples(ref)}, {"text_map": _samples(broken)}, None, kinds)
    assert {g.name for g in accuracy_gates(m, budget) if not g.ok} >= {"text_map.map_iou"}


def test_a_sequence_is_held_to_its_per_step_agreement():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((4, 1, 40, 12)) * 4  # 40 steps of 12 classes (a CTC output)
    ref = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    out = ref.copy()
    out[0, 0, :1] = out[0, 0, :1, ::-1]  # one of 160 steps decides differently
    kinds = output_kinds({"probs": _samples(ref)}, {})
    assert kinds["probs"][0] == "sequence"
    m = compare_outputs({"probs": _samples(ref)}, {"probs": _samples(out)}, None, kinds)
    assert m["probs"]["step_agreement"] == 159 / 160 and "top1_agreement" not in m["probs"]
    failed = [g.name for g in accuracy_gates(m, DEFAULT_BUDGETS["int8"]) if not g.ok]
    assert "probs.rel_error" not in failed and "probs.step_agreement" not in failed
    # declared in the profile: compared by its values, as any other output
    declared = output_kinds({"probs": _samples(ref)}, {"probs": "values"})
    assert declared["probs"] == ("values", "declared in the profile's [accuracy.outputs]")


def test_what_is_neither_a_map_nor_a_sequence_is_compared_by_its_values():
    rng = np.random.default_rng(2)
    assert detect_kind(_samples(rng.standard_normal((4, 1, 10))))[0] == "values"  # logits
    softmax = np.exp(rng.standard_normal((4, 1, 10)))
    assert detect_kind(_samples(softmax / softmax.sum(-1, keepdims=True)))[0] == "values"
    assert detect_kind(_samples(rng.uniform(0, 1, (4, 1, 4, 4))))[0] == "values"  # too small
    assert detect_kind(_samples(rng.uniform(0, 1, (4, 1, 3, 32, 32))))[0] == "values"  # RGB
