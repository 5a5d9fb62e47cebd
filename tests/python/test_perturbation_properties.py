"""Properties of the perturbation methods against oracles that are not our code: Shapley values by enumeration,
convergence of the sampled estimates, KV-cache reuse equal to full forwards, draws independent of batching."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from attribution_models import tiny_bert, tiny_gpt2, tiny_llama, word_tokenizer


from attnscope.attribution import attribute


@pytest.fixture(scope="module")
def bert64():
    tok = word_tokenizer(True)
    model = tiny_bert().double()
    with torch.no_grad():
        model.bert.embeddings.word_embeddings.weight.mul_(20)
    enc = tok(["the cat sat on the mat"], return_tensors="pt")  # 8 tokens with [CLS] and [SEP]
    return tok, model, enc


def brute_force_shapley(model, enc, target_class: int, replacement: int) -> torch.Tensor:
    """Shapley values of the class logit over the tokens, from all 2**n subsets (tokens absent -> replacement)."""
    ids = enc["input_ids"][0]
    n = ids.shape[0]
    subsets = list(itertools.product([0, 1], repeat=n))
    batch = torch.stack([torch.where(torch.tensor(s, dtype=torch.bool), ids, torch.full_like(ids, replacement))
                         for s in subsets])
    with torch.no_grad():
        out = model(input_ids=batch, attention_mask=torch.ones_like(batch)).logits[:, target_class].double()
    value = {s: float(v) for s, v in zip(subsets, out)}
    phi = torch.zeros(n, dtype=torch.float64)
    for s in subsets:
        k = sum(s)
        for i in range(n):
            if s[i]:
                continue
            with_i = s[:i] + (1,) + s[i + 1 :]
            phi[i] += math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n) * (value[with_i] - value[s])
    return phi


@pytest.fixture(scope="module")
def exact_phi(bert64):
    tok, model, enc = bert64
    return brute_force_shapley(model, enc, 1, tok.pad_token_id)


def test_exact_kernel_shap_equals_enumerated_shapley_values(bert64, exact_phi):
    tok, model, enc = bert64
    res = attribute(model, enc, method="kernel_shap", mode="exact", target=1, tokenizer=tok)
    assert res.scores.dtype == torch.float64
    assert (res.scores[0] - exact_phi).abs().max() <= 1e-6
    # efficiency holds exactly: sum of the values = f(x) - f(all absent)
    assert abs(float(res.feature_scores[0].sum()) - float(res.f_input[0] - res.f_baseline[0])) <= 1e-9
    assert int(res.n_steps_used[0]) == 2**8


def test_shapley_sampling_converges_to_the_exact_values(bert64, exact_phi):
    tok, model, enc = bert64
    errs = []
    for m in (4, 128):
        res = attribute(model, enc, method="shapley_sampling", target=1, n_samples=m, seed=3, tokenizer=tok)
        errs.append(float((res.scores[0] - exact_phi).norm()))
    assert errs[1] < 0.5 * errs[0]


def test_sampled_kernel_shap_converges_to_the_exact_values(bert64, exact_phi):
    tok, model, enc = bert64
    errs = []
    for m in (20, 1000):
        res = attribute(model, enc, method="kernel_shap", target=1, n_samples=m, seed=3, tokenizer=tok)
        errs.append(float((res.scores[0] - exact_phi).norm()))
    assert errs[1] < 0.5 * errs[0]


def test_exact_kernel_shap_with_a_budget_samples_by_size(bert64, exact_phi):
    tok, model, enc = bert64
    res = attribute(model, enc, method="kernel_shap", mode="exact", target=1, n_samples=100, seed=1, tokenizer=tok)
    # efficiency is enforced whatever the budget; the estimate is close to the exact values
    assert abs(float(res.feature_scores[0].sum()) - float(res.f_input[0] - res.f_baseline[0])) <= 1e-9
    assert float((res.scores[0] - exact_phi).norm()) < 0.25 * float(exact_phi.norm())


@pytest.mark.parametrize("build", [tiny_llama, tiny_gpt2])
@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("method", ["occlusion", "shapley_sampling"])
def test_kv_reuse_equals_full_forwards(build, side, method):
    tok = word_tokenizer(False)
    tok.padding_side = side
    model = build()
    enc = tok(["the cat sat on the mat and ran", "a dog ran"], return_tensors="pt", padding=True)
    kw = {"n_samples": 3, "seed": 0} if method == "shapley_sampling" else {"window": 2}
    fast = attribute(model, enc, method=method, tokenizer=tok, internal_batch_size=4, **kw)
    full = attribute(model, enc, method=method, tokenizer=tok, internal_batch_size=4, kv_reuse=False, **kw)
    assert fast.kv_reuse and not full.kv_reuse
    assert (fast.scores - full.scores).abs().max() <= 1e-5
    assert (fast.scores[enc["attention_mask"] == 0] == 0).all()


def test_continuation_targets_run_full_forwards_with_the_same_values():
    tok = word_tokenizer(False)
    model = tiny_gpt2()
    enc = tok(["the cat sat on the"], return_tensors="pt")
    res = attribute(model, enc, method="occlusion", target="mat", tokenizer=tok)
    assert not res.kv_reuse
    with pytest.raises(ValueError, match="kv_reuse=True is not possible"):
        attribute(model, enc, method="occlusion", target="mat", tokenizer=tok, kv_reuse=True)


def test_draws_do_not_depend_on_the_other_examples_or_chunks():
    tok = word_tokenizer(True)
    model = tiny_bert()
    with torch.no_grad():  # outputs that depend on the tokens
        model.bert.embeddings.word_embeddings.weight.mul_(20)
    first = "the cat sat on the mat"
    kw = dict(method="kernel_shap", target=0, n_samples=20, seed=5)
    # example 0's draws come from (seed, 0): the same whatever else is in the batch and however it is chunked
    a = attribute(model, tok([first, "a dog ran"], return_tensors="pt", padding=True), internal_batch_size=3, **kw)
    b = attribute(model, tok([first, "a big red dog ran to the house"], return_tensors="pt", padding=True),
                  internal_batch_size=8, **kw)
    n = int(a.attention_mask[0].sum())
    scale = float(a.scores[0].abs().max())
    assert scale > 0 and float((a.scores[0, :n] - b.scores[0, :n]).abs().max()) <= 1e-5 * scale
    # and the same call with another seed draws other coalitions
    c = attribute(model, tok([first], return_tensors="pt"), **{**kw, "seed": 6})
    assert float((a.scores[0, :n] - c.scores[0, :n]).abs().max()) > 1e-3 * scale


def test_words_features_group_word_pieces():
    tok = word_tokenizer(True)
    model = tiny_bert()
    enc = tok(["the cat sat"], return_tensors="pt")
    res = attribute(model, enc, method="occlusion", target=0, features="words")
    # [CLS], 3 words, [SEP]: one feature each (the word-level tokenizer has one piece per word)
    assert res.feature_mask.tolist() == [[0, 1, 2, 3, 4]]


def test_fixed_positions_are_never_perturbed_and_get_zero():
    tok = word_tokenizer(True)
    model = tiny_bert()
    enc = tok(["the cat sat on the mat"], return_tensors="pt")
    groups = torch.tensor([[-1, 0, 0, 1, 1, 2, 2, -1]])
    res = attribute(model, enc, method="shapley_sampling", target=0, feature_groups=groups, n_samples=4, seed=0)
    assert res.scores[0, 0] == 0 and res.scores[0, -1] == 0
    assert res.feature_scores.shape == (1, 3)
    total = float(res.feature_scores[0].sum())
    assert abs(total - float(res.f_input[0] - res.f_baseline[0])) <= 1e-5  # efficiency of each permutation


def test_result_saves_and_loads(tmp_path):
    import attnscope

    tok = word_tokenizer(True)
    model = tiny_bert()
    res = attribute(model, tok(["the cat sat"], return_tensors="pt"), method="kernel_shap", target=0, n_samples=12,
                    seed=0)
    back = attnscope.load(res.save(tmp_path / "r"))
    assert torch.equal(back.feature_scores, res.feature_scores) and back.replacement_token == res.replacement_token
    assert torch.equal(back.intercept, res.intercept)
