"""Closed forms, completeness, scoping and the result object of attnscope.attribution.attribute."""

from __future__ import annotations

import types

import pytest
import torch
from attribution_models import minilm, tiny_bert, tiny_gpt2, word_tokenizer
from torch import nn

from attnscope.attribution import attribute
from attnscope.attribution.catalog import INTEGRATIONS
from attnscope.attribution import targets as T


class LinearModel(nn.Module):
    """F(ids) = sum_{t,h} E[ids]_{t,h} W_{c,t,h} + b_c: integrated gradients equal (x - x') * W exactly."""

    def __init__(self, vocab=11, seq=5, hidden=4, classes=2):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.embed = nn.Embedding(vocab, hidden).double()
        self.embed.weight.data = torch.randn(vocab, hidden, generator=g, dtype=torch.float64)
        self.w = nn.Parameter(torch.randn(classes, seq, hidden, generator=g, dtype=torch.float64))
        self.b = nn.Parameter(torch.randn(classes, dtype=torch.float64))

    def get_input_embeddings(self):
        return self.embed

    def forward(self, input_ids, attention_mask=None):
        e = self.embed(input_ids)
        return types.SimpleNamespace(logits=torch.einsum("bth,cth->bc", e, self.w) + self.b)


@pytest.mark.parametrize("integration", INTEGRATIONS)
def test_integrated_gradients_on_a_linear_model_is_exact(integration):
    model = LinearModel()
    ids = torch.tensor([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]])
    base = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    res = attribute(model, ids, method="integrated_gradients", target=1, baselines=base, n_steps=5,
                    integration=integration)
    x = model.embed(ids).detach()
    expected = (x - base) * model.w[1].detach()
    assert (res.raw - expected).abs().max() <= 1e-6 * expected.abs().max()
    assert res.delta.abs().max() <= 1e-6


@pytest.fixture(scope="module")
def minilm_case():
    model, tok = minilm()
    enc = tok(["the quick brown fox jumps over the lazy dog"], return_tensors="pt")
    return model, tok, enc


def test_completeness_gauss_legendre_64_on_minilm_and_delta_falls(minilm_case):
    model, tok, enc = minilm_case
    target = T.Similarity("a fast animal leaps")
    deltas = []
    for n in (2, 8, 64):
        res = attribute(model, enc, method="integrated_gradients", target=target, tokenizer=tok, n_steps=n)
        gap = (res.f_input - res.f_baseline).abs()
        deltas.append(float((res.delta.abs() / gap).max()))
        assert torch.allclose(res.scores.sum(-1) - (res.f_input - res.f_baseline), res.delta, atol=1e-5)
    assert deltas[-1] <= 0.01, deltas
    assert deltas[0] > deltas[1] > deltas[2], deltas


def test_adaptive_reaches_the_completeness_target_with_fewer_steps(minilm_case):
    model, tok, enc = minilm_case
    target = T.Similarity("a fast animal leaps")
    res = attribute(model, enc, method="integrated_gradients", target=target, tokenizer=tok, integration="adaptive",
                    n_steps=64, completeness_tol=0.01)
    gap = (res.f_input - res.f_baseline).abs()
    assert float((res.delta.abs() / gap).max()) <= 0.01
    assert int(res.n_steps_used.max()) < 64


def test_chunking_does_not_change_results():
    tok = word_tokenizer(False)
    model = tiny_gpt2()
    enc = tok(["the cat sat on the", "a dog"], return_tensors="pt", padding=True)
    a = attribute(model, enc, method="integrated_gradients", n_steps=9, internal_batch_size=1)
    b = attribute(model, enc, method="integrated_gradients", n_steps=9, internal_batch_size="auto")
    from attnscope.attribution.chunking import estimate_row_bytes

    one_row = estimate_row_bytes(model, enc["input_ids"].shape[1], model.config.vocab_size)
    c = attribute(model, enc, method="integrated_gradients", n_steps=9, memory_budget=one_row)  # one row per chunk
    assert torch.allclose(a.raw, b.raw, atol=1e-6) and torch.allclose(a.raw, c.raw, atol=1e-6)
    s1 = attribute(model, enc, method="smoothgrad", n_steps=4, seed=3, internal_batch_size=1)
    s2 = attribute(model, enc, method="smoothgrad", n_steps=4, seed=3, internal_batch_size=8)
    assert torch.allclose(s1.raw, s2.raw, atol=1e-6)


def test_padding_gets_no_attribution_and_state_is_restored():
    tok = word_tokenizer(True)
    model = tiny_bert()
    model.train()
    model.classifier.weight.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    hooks = sum(len(m._forward_hooks) for m in model.modules())
    enc = tok(["the cat sat on the mat", "a dog ran"], return_tensors="pt", padding=True)
    res = attribute(model, enc, method="integrated_gradients", target=0, n_steps=4)
    assert torch.all(res.scores[enc["attention_mask"] == 0] == 0) and torch.all(res.raw[1, 5:] == 0)
    assert model.training and [p.requires_grad for p in model.parameters()] == flags
    with pytest.raises(ValueError):
        attribute(model, enc, method="integrated_gradients", target=lambda out: out.logits, n_steps=4)
    assert model.training and [p.requires_grad for p in model.parameters()] == flags
    assert sum(len(m._forward_hooks) for m in model.modules()) == hooks


def test_layer_argument_matches_captum_layer_integrated_gradients():
    captum_attr = pytest.importorskip("captum.attr")
    tok = word_tokenizer(True)
    model = tiny_bert()
    enc = tok(["the cat sat on the mat", "a dog ran"], return_tensors="pt", padding=True)
    ref_ids = torch.where(enc["attention_mask"] == 1, torch.full_like(enc["input_ids"], 4), enc["input_ids"])
    res = attribute(model, enc, method="integrated_gradients", target=1, layer="bert.encoder.layer.0",
                    baselines=ref_ids, n_steps=16)
    assert res.raw.shape == (2, enc["input_ids"].shape[1], 32)

    def fwd(ids, mask, tt):
        return model(input_ids=ids, attention_mask=mask, token_type_ids=tt).logits

    lig = captum_attr.LayerIntegratedGradients(fwd, model.bert.encoder.layer[0])
    ref = lig.attribute(enc["input_ids"], baselines=ref_ids, target=1, n_steps=16,
                        additional_forward_args=(enc["attention_mask"], enc["token_type_ids"]))
    ref = ref * enc["attention_mask"].unsqueeze(-1)
    assert float((res.raw - ref).abs().max() / ref.abs().max()) <= 1e-4


def test_targets_contrast_token_id_and_callable_agree():
    tok = word_tokenizer(False)
    model = tiny_gpt2()
    enc = tok(["the cat sat on the"], return_tensors="pt")
    a = attribute(model, enc, method="saliency", target=T.TokenId("mat"), tokenizer=tok)
    b = attribute(model, enc, method="saliency", target=tok.convert_tokens_to_ids("mat"))
    c = attribute(model, enc, method="saliency", target=lambda out: out.logits[:, -1, tok.convert_tokens_to_ids("mat")])
    assert torch.allclose(a.raw, b.raw) and torch.allclose(a.raw, c.raw)
    d = attribute(model, enc, method="integrated_gradients", target=T.Contrast("mat", "rug"), tokenizer=tok)
    with torch.no_grad():
        logits = model(**enc).logits[0, -1]
    ids = tok.convert_tokens_to_ids(["mat", "rug"])
    assert torch.allclose(d.f_input, (logits[ids[0]] - logits[ids[1]]).unsqueeze(0), atol=1e-5)


def test_result_views(minilm_case):
    model, tok, _ = minilm_case
    enc = tok(["unbelievable tokenization", "hi"], return_tensors="pt", padding=True)
    res = attribute(model, enc, method="input_x_gradient", target=T.Similarity(torch.ones(384)), tokenizer=tok)
    words = res.words()
    assert [w for w, _ in words[0]] == ["[CLS]", "unbelievable", "tokenization", "[SEP]"]
    n_valid = int(enc["attention_mask"][0].sum())
    assert sum(s for _, s in words[0]) == pytest.approx(float(res.scores[0, :n_valid].sum()), abs=1e-5)
    assert len(words[1]) == 3  # padding left out
    top = res.top(2)
    assert len(top[0]) == 2 and abs(top[0][0][2]) >= abs(top[0][1][2])
    assert res.tokens[0][0] == "[CLS]"
    pd = pytest.importorskip("pandas")
    df = res.to_pandas()
    assert isinstance(df, pd.DataFrame) and len(df) == int(enc["attention_mask"].sum())
    assert set(df.columns) >= {"example", "position", "token", "score"}


def test_a_reference_text_is_embedded_in_eval_mode():
    """Target.prepare runs before the methods' own scope: it must not embed the reference with dropout on."""
    from attribution_models import minilm

    from attnscope.attribution import Similarity

    model, tok = minilm()
    enc = tok(["a cat sat on the mat"], return_tensors="pt")
    want = attribute(model, enc, method="saliency", target=Similarity("a dog sat"), tokenizer=tok).scores
    model.train()
    try:
        torch.manual_seed(0)
        got = attribute(model, enc, method="saliency", target=Similarity("a dog sat"), tokenizer=tok).scores
        assert model.training
    finally:
        model.eval()
    torch.testing.assert_close(got, want)
