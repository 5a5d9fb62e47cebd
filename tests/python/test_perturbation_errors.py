"""A clear error for every bad input to the perturbation methods of attnscope.attribution.attribute."""

from __future__ import annotations

import pytest
import torch
from attribution_models import tiny_bert, word_tokenizer


from attnscope.attribution import attribute


@pytest.fixture(scope="module")
def bert():
    tok = word_tokenizer(True)
    return tiny_bert(), tok, tok(["the cat sat on the mat"], return_tensors="pt")  # 8 tokens


def test_overlapping_groups_name_the_positions(bert):
    model, _, enc = bert
    with pytest.raises(ValueError, match=r"overlap: positions \[2\]"):
        attribute(model, enc, method="occlusion", target=0, feature_groups=[[[0, 1, 2], [2, 3], [4, 5, 6, 7]]])


def test_groups_that_leave_tokens_out_name_them(bert):
    model, _, enc = bert
    with pytest.raises(ValueError, match=r"leaves out the non-padding positions \[6, 7\].*-1"):
        attribute(model, enc, method="occlusion", target=0, feature_groups=[[[0, 1, 2], [3, 4, 5]]])


def test_groups_on_padding_or_out_of_range(bert):
    model, tok, _ = bert
    enc = tok(["the cat sat", "a"], return_tensors="pt", padding=True)
    with pytest.raises(ValueError, match=r"feature_groups\[1\]\[0\] holds padding positions \[3, 4\]"):
        attribute(model, enc, method="occlusion", target=0,
                  feature_groups=[[[0, 1], [2, 3, 4]], [[0, 1, 2, 3, 4]]])
    with pytest.raises(ValueError, match=r"positions \[9\] outside 0..4"):
        attribute(model, enc, method="occlusion", target=0, feature_groups=[[[0, 1, 9]], [[0, 1, 2]]])
    with pytest.raises(ValueError, match=r"must be \[batch=2, seq=5\]"):
        attribute(model, enc, method="occlusion", target=0, feature_groups=torch.zeros(2, 4, dtype=torch.long))


def test_too_few_samples_for_kernel_shap(bert):
    model, _, enc = bert
    with pytest.raises(ValueError, match=r"n_samples >= n_features \+ 2.*8 features and n_samples=6"):
        attribute(model, enc, method="kernel_shap", target=0, n_samples=6)
    with pytest.raises(ValueError, match=r"needs n_samples >= n_features; example 0 has 8 features"):
        attribute(model, enc, method="kernel_shap", mode="exact", target=0, n_samples=5)


def test_kernel_shap_default_samples_grow_with_long_inputs(bert):
    """Captum's default of 25 samples cannot fit 30 features; the default becomes 2n + 4 instead of an error."""
    model, tok, _ = bert
    long = tok(["the cat sat on the mat and ran to the big red house " * 2 + "and it was small"], return_tensors="pt")
    n = int(long["attention_mask"].sum())
    assert n > 23
    res = attribute(model, long, method="kernel_shap", estimator="captum", target=0, seed=0, progress=False)
    assert torch.isfinite(res.scores).all()
    assert int(res.n_forwards.sum()) <= 2 * n + 4 + 1  # the distinct coalitions, plus the input's own forward
    # the default estimator (leverage: Poisson sampling) draws 2n + 4 coalitions in expectation
    res = attribute(model, long, method="kernel_shap", target=0, seed=0, progress=False)
    assert torch.isfinite(res.scores).all()
    assert abs(int(res.n_steps_used[0]) - (2 * n + 4)) <= 4 * (2 * n + 4) ** 0.5


@pytest.mark.parametrize("kw,msg", [
    ({"window": 0}, "window must be >= 1, got 0"),
    ({"window": 2, "stride": 3}, "stride=3 is larger than window=2"),
    ({"window": 9}, "window=9 is wider than example 0's 8 features"),
    ({"window": 1.5}, "window must be an int"),
])
def test_bad_window_or_stride(bert, kw, msg):
    model, _, enc = bert
    with pytest.raises((ValueError, TypeError), match=msg):
        attribute(model, enc, method="occlusion", target=0, **kw)


@pytest.mark.parametrize("kw,msg", [
    ({"distance": "manhattan"}, "unknown distance 'manhattan'; use one of cosine, euclidean"),
    ({"surrogate": "tree"}, "unknown surrogate 'tree'; use one of ridge, lasso, linear"),
    ({"surrogate": "linear", "alpha": 0.1}, "surrogate='linear' has no penalty"),
    ({"kernel_width": 0}, "kernel_width must be a finite number > 0"),
    ({"alpha": -1.0}, "alpha must be a finite number > 0"),
    ({"n_samples": 0}, "n_samples must be >= 1"),
])
def test_bad_lime_arguments(bert, kw, msg):
    model, _, enc = bert
    with pytest.raises(ValueError, match=msg):
        attribute(model, enc, method="lime", target=0, **kw)


def test_arguments_of_other_methods_are_refused(bert):
    model, _, enc = bert
    with pytest.raises(ValueError, match=r"method='occlusion' takes no n_samples="):
        attribute(model, enc, method="occlusion", target=0, n_samples=10)
    with pytest.raises(ValueError, match=r"method='lime' takes no window="):
        attribute(model, enc, method="lime", target=0, window=2)
    with pytest.raises(ValueError, match=r"method='saliency' takes no feature_groups="):
        attribute(model, enc, method="saliency", target=0, feature_groups=[[[0]]])
    with pytest.raises(ValueError, match=r"method='kernel_shap' takes no n_steps="):
        attribute(model, enc, method="kernel_shap", target=0, n_steps=8)
    with pytest.raises(ValueError, match="unknown mode 'full' for kernel_shap"):
        attribute(model, enc, method="kernel_shap", target=0, mode="full")


def test_bad_features_and_replacement(bert):
    model, tok, enc = bert
    with pytest.raises(ValueError, match="unknown features 'sentences'"):
        attribute(model, enc, method="occlusion", target=0, features="sentences")
    with pytest.raises(ValueError, match="features='words' needs word ids"):
        attribute(model, enc["input_ids"], method="occlusion", target=0, features="words")
    with pytest.raises(ValueError, match="pass features='words' or feature_groups=, not both"):
        attribute(model, enc, method="occlusion", target=0, features="words", feature_groups=[[[0]]])
    with pytest.raises(ValueError, match="replacement token id 999 out of range"):
        attribute(model, enc, method="occlusion", target=0, baselines=999)
    with pytest.raises(TypeError, match="one replacement token"):
        attribute(model, enc, method="occlusion", target=0, baselines=torch.zeros(8, 32))
    with pytest.raises(ValueError, match="kv_reuse=True is not possible here: the model is not a decoder-only"):
        attribute(model, enc, method="occlusion", target=0, kv_reuse=True)
