"""ats.weights: factored circuits against explicit float64 products of the HF modules' own weights, the organism's
known heads, and the bad inputs."""

from __future__ import annotations

import pytest
import torch

import attnscope as ats
from attnscope import organisms
from attnscope.adapters.sites import base_model
from internal_models import build


def raw_heads(model, kind, layer):
    """W_Q, W_K, W_V [head, d_model, d_head] and W_O [head, d_head, d_model] read here from the modules."""
    cfg = model.config
    h = cfg.num_attention_heads
    d = cfg.hidden_size
    base = base_model(model)
    if kind in ("llama", "qwen2", "mistral", "gemma2"):
        a = base.layers[layer].self_attn
        kv = cfg.num_key_value_heads
        q = a.q_proj.weight.T.reshape(d, h, -1).permute(1, 0, 2)
        k = a.k_proj.weight.T.reshape(d, kv, -1).permute(1, 0, 2)[torch.arange(h) // (h // kv)]
        v = a.v_proj.weight.T.reshape(d, kv, -1).permute(1, 0, 2)[torch.arange(h) // (h // kv)]
        o = a.o_proj.weight.T.reshape(h, -1, d)
    elif kind == "gpt2":
        a = base.h[layer].attn
        q, k, v = (a.c_attn.weight[:, j * d:(j + 1) * d].reshape(d, h, -1).permute(1, 0, 2) for j in range(3))
        o = a.c_proj.weight.reshape(h, -1, d)
    elif kind.startswith("gpt_neox"):
        a = base.layers[layer].attention
        w = a.query_key_value.weight.T.reshape(d, h, 3, -1)  # per head: q, k, v columns
        q, k, v = (w[:, :, j].permute(1, 0, 2) for j in range(3))
        o = a.dense.weight.T.reshape(h, -1, d)
    elif kind in ("bert", "roberta"):
        a = base.encoder.layer[layer].attention
        q, k, v = (m.weight.T.reshape(d, h, -1).permute(1, 0, 2) for m in (a.self.query, a.self.key, a.self.value))
        o = a.output.dense.weight.T.reshape(h, -1, d)
    else:
        a = base.transformer.layer[layer].attention
        q, k, v = (m.weight.T.reshape(d, h, -1).permute(1, 0, 2) for m in (a.q_lin, a.k_lin, a.v_lin))
        o = a.out_lin.weight.T.reshape(h, -1, d)
    return [t.detach().double() for t in (q, k, v, o)]


@pytest.mark.parametrize("kind", ["llama", "qwen2", "gemma2", "gpt2", "gpt_neox", "bert", "distilbert"])
def test_factored_circuits_equal_explicit_float64_products(kind):
    model = build(kind)
    w = ats.weights(model)
    for layer in range(2):
        q, k, v, o = raw_heads(model, kind, layer)
        for head in (0, model.config.num_attention_heads - 1):
            qk = w.qk(layer, head, fold_norm=False).matrix
            ov = w.ov(layer, head, fold_norm=False).matrix
            assert qk.shape == (model.config.hidden_size,) * 2 and qk.A.shape[1] == q.shape[-1]
            torch.testing.assert_close(qk.AB.double(), q[head] @ k[head].T, atol=1e-5, rtol=0)
            torch.testing.assert_close(ov.AB.double(), v[head] @ o[head], atol=1e-5, rtol=0)
            sv = torch.linalg.svdvals(v[head] @ o[head])[:v.shape[-1]]
            torch.testing.assert_close(ov.singular_values(), sv, atol=1e-5, rtol=1e-5)
            # the logits the model computes: (x W_Q)(x W_K)^T for a residual x
            x = torch.randn(3, model.config.hidden_size, dtype=torch.float64)
            torch.testing.assert_close((x @ qk.A.double()) @ (qk.B.double() @ x.T), (x @ q[head]) @ (x @ k[head]).T,
                                       atol=1e-5, rtol=0)


def test_norm_gain_folding_and_token_readout_match_the_model():
    model = build("llama")
    w = ats.weights(model)
    attn_in = base_model(model).layers[1].input_layernorm
    q, k, v, o = raw_heads(model, "llama", 1)
    g = attn_in.weight.detach().double()
    torch.testing.assert_close(w.qk(1, 2).matrix.AB.double(), (g[:, None] * q[2]) @ (g[:, None] * k[2]).T,
                               atol=1e-5, rtol=0)
    # token readout: each token's embedding through the layer's own norm module, then the head's projections
    e = model.get_input_embeddings().weight.detach()
    with torch.no_grad():
        normed = attn_in(e).double()
    ids = [3, 10, 50]
    expected = (normed[ids] @ q[2]) @ (normed[ids] @ k[2]).T
    torch.testing.assert_close(w.qk(1, 2).token_scores(ids, ids).double(), expected, atol=1e-4, rtol=1e-5)
    final = base_model(model).norm.weight.detach().double()
    u = model.lm_head.weight.detach().double().T
    expected_ov = (normed[ids] @ v[2] @ o[2]) @ (final[:, None] * u)[:, ids]
    torch.testing.assert_close(w.ov(1, 2).token_scores(ids, ids).double(), expected_ov, atol=1e-4, rtol=1e-5)


def test_positional_qk_matches_the_model_rope():
    """q·R(Δ)·k from the model's own rotary embedding and apply_rotary_pos_emb."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    model, _ = organisms.load("induction")
    w = ats.weights(model)
    base = base_model(model)
    e = model.get_input_embeddings().weight.detach()
    q, k, _, _ = raw_heads(model, "llama", 0)
    with torch.no_grad():
        normed = base.layers[0].input_layernorm(e).double()
        qm, km = (normed @ q[0]).mean(0), (normed @ k[0]).mean(0)
        pos = torch.arange(17)[None]
        cos, sin = base.rotary_emb(e[None, :17], pos)
        qs = qm.float().expand(1, 1, 17, -1)
        ks = km.float().expand(1, 1, 17, -1)
        qr, kr = apply_rotary_pos_emb(qs, ks, cos, sin)
    scaling = base.layers[0].self_attn.scaling
    expected = torch.stack([qr[0, 0, d] @ kr[0, 0, 0] for d in range(1, 17)]).double() * scaling
    torch.testing.assert_close(w.positional_qk(0, 0), expected, atol=1e-4, rtol=1e-4)


def test_organism_induction_head_copies_and_previous_token_head_prefers_offset_one():
    model, tok = organisms.load("induction")
    w = ats.weights(model)
    pairs = w.ov(1, 0).top_pairs(20, tok)
    diagonal = sum(src == dst for src, dst, _ in pairs)
    assert diagonal >= 15, pairs  # the induction head's OV circuit copies its token
    assert w.ov(1, 0).copying_score() > 0.9
    scores = w.positional_qk(0, 0, 16)
    assert int(scores.argmax()) == 0, scores  # offset 1 (index 0) is the previous token's
    assert int(w.positional_qk(1, 0, 16).argmax()) != 0  # the induction head has no such preference


def test_norms_spectra_views_and_persistence(tmp_path):
    model = build("gpt2")
    w = ats.weights(model)
    assert w.matrix_norms.shape == (2, len(w.matrix_names))
    j = w.matrix_names.index("attn.c_attn.weight")
    c_attn = base_model(model).h[1].attn.c_attn.weight.detach()
    assert float(w.matrix_norms[1, j]) == pytest.approx(float(c_attn.norm()), rel=1e-6)
    s = w.spectra("qk")
    assert s.shape == (2, 4, 8) and bool((s[..., :-1] >= s[..., 1:]).all())
    assert w.plot() is not None and w.view("spectrum").kind == "matrix" and w.view("norms").kind == "matrix"
    df = w.to_pandas()
    assert len(df) == 2 * len(w.matrix_names)
    back = ats.load(w.save(tmp_path / "w"))
    assert isinstance(back, ats.Weights) and torch.equal(back.W_Q, w.W_Q)
    torch.testing.assert_close(back.ov(1, 3).matrix.AB, w.ov(1, 3).matrix.AB)


def test_bad_inputs():
    model = build("gpt2")
    w = ats.weights(model)
    with pytest.raises(ValueError, match=r"layer 2 out of range: the weights hold layers \[0, 1\]"):
        w.qk(2, 0)
    with pytest.raises(ValueError, match=r"head 4 out of range: layers have 4 heads \(0..3\)"):
        w.ov(0, 4)
    with pytest.raises(ValueError, match="positional_qk needs a RoPE model"):
        w.positional_qk(0, 0)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        w.ov(0, 0).top_pairs(0)
    with pytest.raises(ValueError, match="unknown circuit 'vo'"):
        w.spectrum(0, 0, "vo")
    with pytest.raises(ValueError, match=r"layer 9 out of range: model has 2 layers"):
        ats.weights(model, layers=9)
    bert = ats.weights(build("bert"))
    with pytest.raises(ValueError, match="has no token readout"):
        bert.ov(0, 0).top_pairs(3)
