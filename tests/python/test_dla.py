"""Direct logit attribution: completeness against the model's own (pre-softcap) logit, per-head terms against an
independent computation from a forward pre-hook on the output projection's input, the induction organism."""

from __future__ import annotations

import pytest
import torch

import attnscope as ats
from attnscope.attribution.targets import Contrast, TokenId

from lens_models import DECODERS, VOCAB, batch, build


@pytest.fixture(scope="module")
def models():
    return {kind: build(kind) for kind in (*DECODERS, "bert")}


def _last(inputs):
    mask = inputs["attention_mask"]
    return mask.shape[1] - 1 - mask.flip(-1).argmax(-1)


def _parts(model):
    """(blocks, attention, o_proj, final norm, lm head) found by hand per family, independently of the library."""
    kind = model.config.model_type
    if kind == "gpt2":
        t = model.transformer
        return t.h, [b.attn for b in t.h], [b.attn.c_proj for b in t.h], t.ln_f, model.lm_head
    if kind == "gpt_neox":
        t = model.gpt_neox
        return t.layers, [b.attention for b in t.layers], [b.attention.dense for b in t.layers], t.final_layer_norm, \
            model.lm_head
    t = model.model
    return t.layers, [b.self_attn for b in t.layers], [b.self_attn.o_proj for b in t.layers], t.norm, model.lm_head


def _frozen(module, x):
    """Plain-torch frozen norm at input x: c -> the norm's linear part with x's scale."""
    if isinstance(module, torch.nn.LayerNorm):
        scale = module.weight.double() / torch.sqrt(x.double().var(-1, unbiased=False, keepdim=True) + module.eps)
        return lambda c: (c - c.mean(-1, keepdim=True)) * scale
    eps = getattr(module, "variance_epsilon", None) or module.eps
    gain = (1 + module.weight.double()) if "Gemma" in type(module).__name__ else module.weight.double()
    scale = gain / torch.sqrt(x.double().pow(2).mean(-1, keepdim=True) + eps)
    return lambda c: c * scale


def _oracle(model, inputs, token):
    """Per-head terms [batch, layer, head] from o_proj pre-hooks, and the pre-softcap logit from the head's output."""
    blocks, attns, o_projs, norm, head = _parts(model)
    seen = {}
    rows, last = torch.arange(inputs["input_ids"].shape[0]), _last(inputs)
    handles = [o.register_forward_pre_hook(lambda m, a, i=i: seen.__setitem__(("z", i), a[0][rows, last]))
               for i, o in enumerate(o_projs)]
    handles += [o.register_forward_hook(lambda m, a, out, i=i: seen.__setitem__(("a", i), out[rows, last]))
                for i, o in enumerate(o_projs)]
    handles.append(blocks[-1].register_forward_hook(
        lambda m, a, out: seen.__setitem__("x", (out[0] if isinstance(out, tuple) else out)[rows, last])))
    handles.append(head.register_forward_hook(lambda m, a, out: seen.__setitem__("logits", out[rows, last])))
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        for h in handles:
            h.remove()
    u = head.weight[token].double()
    final = _frozen(norm, seen["x"])
    heads_n = model.config.num_attention_heads
    terms = []
    for i, (blk, o) in enumerate(zip(blocks, o_projs)):
        z = seen[("z", i)].double()  # [batch, heads*head_dim]
        w = o.weight.double()
        conv = type(o).__name__ == "Conv1D"
        hd = z.shape[-1] // heads_n
        post = _frozen(blk.post_attention_layernorm, seen[("a", i)]) if hasattr(blk, "post_feedforward_layernorm") \
            else (lambda c: c)
        per = []
        for h in range(heads_n):
            zh = z[:, h * hd:(h + 1) * hd]
            c = zh @ (w[h * hd:(h + 1) * hd] if conv else w[:, h * hd:(h + 1) * hd].t())
            per.append((final(post(c)) * u).sum(-1))
        terms.append(torch.stack(per, -1))
    return torch.stack(terms, 1), seen["logits"][:, token].double()


@pytest.mark.parametrize("kind", DECODERS)
def test_contributions_sum_to_the_logit_and_heads_match_o_proj_hooks(models, kind):
    model, inputs = models[kind], batch()
    res = ats.direct_logit_attribution(model, inputs, target=TokenId(7))
    heads, logit = _oracle(model, inputs, 7)
    torch.testing.assert_close(res.logit, logit, rtol=1e-5, atol=1e-6)  # the pre-softcap logit of the model
    torch.testing.assert_close(res.values.sum(1), logit, rtol=1e-4, atol=0)
    assert float((res.delta.abs() / logit.abs()).max()) < 1e-4
    torch.testing.assert_close(res.heads, heads, rtol=1e-5, atol=1e-5)
    if kind == "gemma2":  # the lens and the model soft-cap; the decomposition explains the logit before it
        assert model.config.final_logit_softcapping and float(res.logit.abs().max()) > 0


@pytest.mark.parametrize("kind", ["gpt2", "gpt_neox", "llama"])
def test_by_layer_agrees_with_by_head_and_contrast_is_a_difference(models, kind):
    model, inputs = models[kind], batch()
    by_head = ats.direct_logit_attribution(model, inputs, target=Contrast(7, 8))
    by_layer = ats.direct_logit_attribution(model, inputs, target=Contrast(7, 8), by="layer")
    # heads recombined in float64 vs the model's float32 attention output: float32 rounding apart
    torch.testing.assert_close(by_head.attn, by_layer.attn, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(by_head.by_layer, by_layer.by_layer, rtol=1e-5, atol=1e-6)
    assert torch.isnan(by_layer.heads).all() and "L0.attn" in by_layer.names
    a = ats.direct_logit_attribution(model, inputs, target=7)
    b = ats.direct_logit_attribution(model, inputs, target=8)
    torch.testing.assert_close(by_head.values, a.values - b.values, rtol=1e-9, atol=1e-9)


def test_induction_head_carries_the_copied_token():
    from attnscope.analysis import repeated_sequences

    model, tok = ats.organisms.load("induction")
    seqs = repeated_sequences(tok, n=4, segment_len=12, seed=7)[:, :-3]  # ends inside the second copy
    with torch.no_grad():
        pred = model(input_ids=seqs).logits[:, -1].argmax(-1)
    copied = seqs[:, -12]  # the token after the last one's first occurrence
    assert torch.equal(pred, copied)
    for i in range(seqs.shape[0]):
        res = ats.direct_logit_attribution(model, seqs[i:i + 1], tokenizer=tok)
        assert res.target_ids.tolist() == [[int(copied[i])]]
        layer, head = divmod(int(res.by_head.argmax()), res.by_head.shape[1])
        assert (layer, head) == (1, 0), res.top(4)
        assert res.top(1)[0][0] == "L1H0", res.top(4)


def test_strings_with_a_tokenizer_and_token_string_targets():
    model, tok = ats.organisms.load("induction")
    text = "t3 t17 t42 t8 t99 t3 t17"
    lens = ats.logit_lens(model, text, tokenizer=tok, target="t42", top_k=2)
    assert lens.tokens[0] == ["<bos>", "t3", "t17", "t42", "t8", "t99", "t3", "t17"]
    assert lens.target_ids.tolist() == [[tok.convert_tokens_to_ids("t42")]] and lens.token(lens.target_ids[0, 0]) == "t42"
    assert lens.top_tokens(1, 7)[0][0] == "t42"  # the organism copies
    dla = ats.direct_logit_attribution(model, [text, "t5 t6 t5"], tokenizer=tok, target=Contrast("t42", "t8"))
    assert dla.target_ids.tolist() == [[tok.convert_tokens_to_ids("t42"), tok.convert_tokens_to_ids("t8")]] * 2
    assert dla.by_head.shape == (2, 2, dla.heads.shape[-1])
    torch.testing.assert_close(dla.values.sum(1), dla.logit, rtol=1e-6, atol=1e-6)


def test_results_pandas_save_load_plot_view(models, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    res = ats.direct_logit_attribution(models["gpt2"], batch(padding=False), target=5)
    assert res.by_head.shape == (3, 4) and res.by_layer.shape == (3,)
    assert set(res.contributions) == set(res.names) and res.contributions["embed"].dim() == 0
    assert {"L0.attn_bias", "L2.mlp", "final_norm.bias", "embed"} <= set(res.names)
    top = res.top(3)
    assert len(top) == 3 and abs(top[0][1]) >= abs(top[1][1]) >= abs(top[2][1])
    df = res.to_pandas()
    assert len(df) == len(res.names)
    row = df[df.component == "L1H2"].iloc[0]
    assert (row["layer"], row["head"], row["kind"]) == (1, 2, "head") and row.contribution == float(res.by_head[1, 2])
    assert df[df.component == "L2.mlp"].iloc[0].kind == "mlp"
    back = ats.load(res.save(tmp_path / "dla"))
    assert isinstance(back, ats.DLAResult) and torch.equal(back.values, res.values) and back.names == res.names
    assert len(res.plot().axes) == 3
    assert "dla" in res.view().html


def test_bad_inputs(models):
    with pytest.raises(ValueError, match="post-LN encoder.*logit lens"):
        ats.direct_logit_attribution(models["bert"], batch())
    model = models["llama"]
    with pytest.raises(ValueError, match="by must be 'head' or 'layer'"):
        ats.direct_logit_attribution(model, batch(), by="neuron")
    with pytest.raises(ValueError, match="target token id 97 out of range"):
        ats.direct_logit_attribution(model, batch(), target=VOCAB)
    with pytest.raises(ValueError, match="not a token"):
        ats.direct_logit_attribution(model, batch(), target=lambda out: out.logits[:, -1, 0])
    with pytest.raises(ValueError, match=r"token id 120, outside the model's vocabulary of 97 tokens"):
        ats.direct_logit_attribution(model, torch.tensor([[5, 120, 7]]))


@pytest.mark.parametrize("kind", ["llama", "gpt2", "gemma2"])
def test_scoped_installation_is_removed(models, kind):
    from transformers.modeling_utils import AttentionInterface

    model = models[kind]
    impl = model.config._attn_implementation
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    with pytest.raises(ValueError):
        ats.direct_logit_attribution(model, batch(), target=VOCAB)
    ats.direct_logit_attribution(model, batch())
    assert model.config._attn_implementation == impl
    assert not [k for k in AttentionInterface._global_mapping if k.startswith("attnscope")]
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == hooks

    def fail(module, args):
        raise RuntimeError("boom inside the forward")

    blocks = model.transformer.h if kind == "gpt2" else model.model.layers
    handle = blocks[-1].register_forward_pre_hook(fail)
    try:
        for call in (ats.direct_logit_attribution, ats.logit_lens):
            with pytest.raises(RuntimeError, match="boom"):
                call(model, batch())
    finally:
        handle.remove()
    assert model.config._attn_implementation == impl
    assert not [k for k in AttentionInterface._global_mapping if k.startswith("attnscope")]
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == hooks
