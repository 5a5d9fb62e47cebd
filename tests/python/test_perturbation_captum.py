"""Parity of the perturbation methods with Captum 0.9 (the oracle), fed the very same coalitions / permutations:
occlusion, shapley_sampling and kernel_shap(mode="sampled") on token ids, lime on the word embeddings (its cosine
kernel is a distance between embeddings). max|ours - captum| / max|captum| <= 1e-5."""

from __future__ import annotations

import pytest
import torch
from attribution_models import tiny_bert, tiny_llama, word_tokenizer

captum_attr = pytest.importorskip("captum.attr")


from attnscope.attribution import attribute  # noqa: E402
from attnscope.attribution.perturbation.kernel_shap import kernel_shap_coalitions  # noqa: E402
from attnscope.attribution.perturbation.lime import lime_coalitions  # noqa: E402
from attnscope.attribution.perturbation.shapley_sampling import permutations  # noqa: E402
from attnscope.attribution.seeds import example_generator  # noqa: E402

TOL = 1e-5
SEED = 7


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return float((ours.double() - ref.double()).abs().max() / ref.double().abs().max())


@pytest.fixture(scope="module")
def bert_case():
    tok = word_tokenizer(True)
    model = tiny_bert()
    with torch.no_grad():  # larger embeddings: the random model's outputs then depend on the tokens
        model.bert.embeddings.word_embeddings.weight.mul_(20)
    enc = tok(["the cat sat on the mat and ran"], return_tensors="pt")
    ids = enc["input_ids"]

    def fwd(x):
        return model(input_ids=x, attention_mask=torch.ones_like(x), token_type_ids=torch.zeros_like(x)).logits

    return tok, model, enc, ids, fwd


def _replay(rows: torch.Tensor):
    def perturb(original_inp, **kwargs):
        for row in rows:
            yield row.unsqueeze(0).long()

    return perturb


@pytest.mark.parametrize("window,stride", [(1, 1), (3, 2), (4, 4)])
def test_occlusion_matches_captum(bert_case, window, stride):
    tok, model, enc, ids, fwd = bert_case
    ours = attribute(model, enc, method="occlusion", target=1, window=window, stride=stride, tokenizer=tok)
    ref = captum_attr.Occlusion(fwd).attribute(ids, sliding_window_shapes=(window,), strides=stride,
                                               baselines=tok.pad_token_id, target=1, perturbations_per_eval=4)
    assert ours.replacement_token == tok.pad_token_id
    assert rel_err(ours.scores, ref) <= TOL


@pytest.mark.parametrize("antithetic", [False, True])
def test_shapley_sampling_matches_captum_on_word_groups(bert_case, antithetic):
    tok, model, enc, ids, fwd = bert_case
    groups = [[[0], [1, 2], [3], [4, 5, 6], [7, 8, 9]]]  # [CLS] + words + [SEP], spans of tokens
    ours = attribute(model, enc, method="shapley_sampling", target=1, feature_groups=groups, n_samples=6, seed=SEED,
                     antithetic=antithetic, baselines="[MASK]", tokenizer=tok)
    perms = permutations(5, 6, example_generator(SEED, 0), antithetic)
    fmask = ours.feature_mask
    sv = captum_attr.ShapleyValueSampling(fwd)
    sv.permutation_generator = lambda n, m: iter(perms.tolist())
    ref = sv.attribute(ids, baselines=tok.mask_token_id, target=1, feature_mask=fmask, n_samples=perms.shape[0],
                       perturbations_per_eval=3)
    assert rel_err(ours.scores, ref) <= TOL
    # each token of a group carries the group's score
    assert torch.equal(ours.scores[0, 4], ours.scores[0, 6])


def test_kernel_shap_sampled_matches_captum(bert_case):
    tok, model, enc, ids, fwd = bert_case
    n, m = ids.shape[1], 40
    ours = attribute(model, enc, method="kernel_shap", estimator="captum", target=1, n_samples=m, seed=SEED,
                     tokenizer=tok)
    z = kernel_shap_coalitions(n, m, example_generator(SEED, 0))
    ks = captum_attr.KernelShap(fwd)
    ks.perturb_func = _replay(z)
    ref = ks.attribute(ids, baselines=tok.pad_token_id, target=1, n_samples=m, perturbations_per_eval=8)
    assert rel_err(ours.scores, ref) <= TOL
    assert torch.allclose(ours.feature_scores[0], ours.scores[0].double())
    assert ours.n_forwards[0] < m + 1  # duplicate coalitions run once


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_lime_matches_captum_ridge_on_embeddings(bert_case, distance):
    from captum._utils.models.linear_model import SkLearnRidge
    from captum.attr._core.lime import get_exp_kernel_similarity_function

    tok, model, enc, ids, fwd = bert_case
    n, m = ids.shape[1], 30
    width = 1.0 if distance == "cosine" else 200.0
    ours = attribute(model, enc, method="lime", target=2, n_samples=m, seed=SEED, distance=distance,
                     kernel_width=width, tokenizer=tok)
    z = lime_coalitions(n, m, example_generator(SEED, 0))
    emb = model.get_input_embeddings()
    x = emb(ids).detach()
    base = emb(torch.tensor([tok.pad_token_id])).detach()[0]

    def fwd_emb(e):
        return model(inputs_embeds=e, attention_mask=torch.ones(e.shape[:2], dtype=torch.long)).logits

    lime = captum_attr.Lime(fwd_emb, interpretable_model=SkLearnRidge(),
                            similarity_func=get_exp_kernel_similarity_function(distance, width), perturb_func=_replay(z))
    fmask = torch.arange(n).view(1, n, 1)
    ref = lime.attribute(x, baselines=base, target=2, feature_mask=fmask, n_samples=m, perturbations_per_eval=8)
    assert rel_err(ours.scores, ref[0, :, 0]) <= TOL
    assert ours.intercept is not None and ours.local_r2 is not None and 0 <= float(ours.local_r2[0]) <= 1


def test_occlusion_on_a_causal_lm_with_kv_reuse_matches_captum():
    tok = word_tokenizer(False)
    model = tiny_llama()
    enc = tok(["the cat sat on the mat and ran to the house"], return_tensors="pt")
    ids = enc["input_ids"]
    ours = attribute(model, enc, method="occlusion", target=9, window=2, tokenizer=tok)
    assert ours.kv_reuse

    def fwd(x):
        return model(input_ids=x).logits[:, -1, 9]

    ref = captum_attr.Occlusion(fwd).attribute(ids, sliding_window_shapes=(2,), baselines=tok.pad_token_id,
                                               perturbations_per_eval=5)
    assert rel_err(ours.scores, ref) <= TOL
