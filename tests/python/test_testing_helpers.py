"""attnscope.testing helpers pass on real cases and fail, with the measured values, on cases built to fail."""

from __future__ import annotations

import pytest

from attnscope.testing import assert_attention_matches_eager

from tiny_models import batch, build


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_attention_matches_eager_passes(kind):
    assert_attention_matches_eager(build(kind), batch(kind, "left"))


def test_attention_matches_eager_fails_with_values():
    with pytest.raises(AssertionError, match=r"differs from eager by more than 1e-12: layer 0: \d\.\d\de-\d+, layer 1"):
        assert_attention_matches_eager(build("qwen2"), batch("qwen2", "right"), atol=1e-12)


def test_completeness_passes_and_fails(minilm_path):
    import attnscope as ats
    from attnscope.attribution import Similarity
    from attnscope.testing import assert_completeness
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm_path)
    model = AutoModel.from_pretrained(minilm_path).eval()
    enc = tok(["A man is playing a guitar."], return_tensors="pt")
    good = ats.attribute(model, enc, method="integrated_gradients", n_steps=64, target=Similarity("Music is played."),
                         tokenizer=tok)
    assert_completeness(good, rtol=0.01)
    coarse = ats.attribute(model, enc, method="integrated_gradients", n_steps=2, integration="riemann_right",
                           target=Similarity("Music is played."), tokenizer=tok)
    with pytest.raises(AssertionError, match=r"completeness above rtol=0.01 .* example 0: \|delta\|="):
        assert_completeness(coarse, rtol=0.01)
    saliency = ats.attribute(model, enc, method="saliency", target=Similarity("Music is played."), tokenizer=tok)
    with pytest.raises(AssertionError, match="has no completeness delta"):
        assert_completeness(saliency)


def test_randomization_check(attnscope_organism):
    import torch

    from attnscope.testing import assert_passes_randomization_check

    model, tok = attnscope_organism
    ids = tok(["t1 t5 t9 t2 t7 t1 t5 t9 t2", "t3 t8 t4 t3 t8"], padding=True, return_tensors="pt")
    rhos = assert_passes_randomization_check(model, ids, "input_x_gradient")  # default bound 0.5
    assert len(rhos) == 2
    with pytest.raises(AssertionError, match=r"fails the randomisation check: mean \|Spearman rho\| .*top 1 layer\(s\) randomised: \|rho\|="):
        assert_passes_randomization_check(model, ids, "input_x_gradient", max_rank_correlation=0.0)
    assert torch.is_tensor(ids["input_ids"])


def test_head_role_on_the_organism_and_a_random_copy(attnscope_organism):
    import copy

    import torch

    from attnscope.testing import assert_head_role

    model, tok = attnscope_organism
    assert assert_head_role(model, tok, layer=1, head=0, role="induction", min_score=0.5) >= 0.5
    random_model = copy.deepcopy(model)
    torch.manual_seed(0)
    random_model.apply(random_model._init_weights)
    with pytest.raises(AssertionError, match=r"layer 1 head 0 has induction score 0\.\d+ < 0.5; the best head is"):
        assert_head_role(random_model, tok, layer=1, head=0, role="induction", min_score=0.5)
