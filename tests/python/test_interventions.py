"""Exact activation patching against a brute-force reference written with plain forward hooks (one full forward per
patch, no cache or layer reuse), on tiny Llama, GPT-2 and Qwen2 models; reuse on and off give the same numbers."""

from __future__ import annotations

import pytest
import torch

import attnscope as ats
from attnscope.attribution import NextToken, TokenId
from internal_models import build

KINDS = ["llama", "gpt2", "qwen2"]
A, B = 10, 20


def _modules(model, kind):
    """Plain module handles, written here without attnscope: layer blocks and attention output projections."""
    if kind == "gpt2":
        blocks = list(model.transformer.h)
        return blocks, [b.attn.c_proj for b in blocks]
    blocks = list(model.model.layers)
    return blocks, [b.self_attn.o_proj for b in blocks]


def _logit_diff(model, ids):
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    return float(logits[0, -1, A] - logits[0, -1, B])


def _record(model, module, ids, pre):
    store = {}
    if pre:
        h = module.register_forward_pre_hook(lambda m, a: store.setdefault("x", a[0].detach().clone()))
    else:
        h = module.register_forward_hook(lambda m, a, o: store.setdefault("x", o.detach().clone()))
    try:
        with torch.no_grad():
            model(input_ids=ids)
    finally:
        h.remove()
    return store["x"]


def _patched(model, module, ids, pre, edit):
    if pre:
        h = module.register_forward_pre_hook(lambda m, a: (edit(a[0].clone()), *a[1:]))
    else:
        h = module.register_forward_hook(lambda m, a, o: edit(o.clone()))
    try:
        return _logit_diff(model, ids)
    finally:
        h.remove()


def brute_force(model, kind, clean, corrupted, site, by):
    """[layer, column] metric values, one full forward per patch."""
    blocks, o_projs = _modules(model, kind)
    heads = model.config.num_attention_heads
    n = clean.shape[1]
    out = []
    for layer in range(len(blocks)):
        module, pre = {"resid_pre": (blocks[layer], True), "attn_out": (o_projs[layer], False),
                       "head_out": (o_projs[layer], True)}[site]
        src = _record(model, module, clean, pre)
        row = []
        if by == "position":
            for p in range(n):
                def edit(x, p=p):
                    x[:, p] = src[:, p]
                    return x
                row.append(_patched(model, module, corrupted, pre, edit))
        elif by == "head":
            d = src.shape[-1] // heads
            for h in range(heads):
                def edit(x, h=h):
                    x[..., h * d:(h + 1) * d] = src[..., h * d:(h + 1) * d]
                    return x
                row.append(_patched(model, module, corrupted, pre, edit))
        else:
            row.append(_patched(model, module, corrupted, pre, lambda x: src.clone()))
        out.append(row)
    return torch.tensor(out, dtype=torch.float64)


def _pair(n=9, seed=1):
    g = torch.Generator().manual_seed(seed)
    clean = torch.randint(3, 90, (1, n), generator=g)
    corrupted = clean.clone()
    corrupted[0, 2] = (clean[0, 2] + 7) % 90 + 3
    corrupted[0, 5] = (clean[0, 5] + 11) % 90 + 3
    return clean, corrupted


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("site,by", [("resid_pre", "position"), ("attn_out", "position"), ("head_out", "head"),
                                     ("resid_pre", "layer")])
def test_exact_patching_equals_brute_force(kind, site, by):
    model = build(kind)
    clean, corrupted = _pair()
    expected = brute_force(model, kind, clean, corrupted, site, by)
    for reuse in (True, False):
        res = ats.activation_patching(model, clean, corrupted, metric=("logit_diff", A, B), sites=(site,), by=by,
                                      reuse=reuse, batch_size=3)
        got = res.raw[site][0]
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, atol=1e-5, rtol=0), (reuse, (got - expected).abs().max())
    assert res.clean_metric[0] == pytest.approx(_logit_diff(model, clean), abs=1e-6)
    assert res.corrupted_metric[0] == pytest.approx(_logit_diff(model, corrupted), abs=1e-6)


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_kv_and_layer_reuse_equal_no_reuse_for_every_site(kind):
    model = build(kind)
    clean, corrupted = _pair(n=8, seed=3)
    sites = ("resid_pre", "resid_mid", "resid_post", "attn_out", "head_out", "mlp_out", "mlp_hidden")
    kwargs = dict(metric=("logit_diff", A, B), sites=sites)
    fast = ats.activation_patching(model, clean, corrupted, **kwargs)
    slow = ats.activation_patching(model, clean, corrupted, reuse=False, batch_size=1, **kwargs)
    for site in sites:
        assert torch.allclose(fast.raw[site], slow.raw[site], atol=1e-5, rtol=0), site
    # a patch at the last layer's resid_post at the last position restores the clean metric exactly
    assert fast.normalized["resid_post"][0, -1, -1] == pytest.approx(1.0, abs=1e-4)


def test_batch_of_unequal_lengths_is_patched_per_example():
    model = build("llama")
    c1, x1 = _pair(n=9, seed=1)
    c2, x2 = _pair(n=7, seed=2)
    clean = {"input_ids": torch.cat([c1, torch.cat([c2, torch.zeros(1, 2, dtype=torch.long)], 1)]),
             "attention_mask": torch.tensor([[1] * 9, [1] * 7 + [0] * 2])}
    corrupted = {"input_ids": torch.cat([x1, torch.cat([x2, torch.zeros(1, 2, dtype=torch.long)], 1)]),
                 "attention_mask": clean["attention_mask"]}
    res = ats.activation_patching(model, clean, corrupted, metric=("logit_diff", A, B))
    assert torch.allclose(res.raw["resid_pre"][1, :, :7], brute_force(model, "llama", c2, x2, "resid_pre", "position"),
                          atol=1e-5, rtol=0)
    assert torch.isnan(res.raw["resid_pre"][1, :, 7:]).all()
    assert torch.allclose(res.raw["resid_pre"][0], brute_force(model, "llama", c1, x1, "resid_pre", "position"),
                          atol=1e-5, rtol=0)


def test_metrics_targets_and_callables_agree():
    model = build("qwen2")
    clean, corrupted = _pair()
    by_name = ats.activation_patching(model, clean, corrupted, metric=("logit_diff", A, B))
    by_callable = ats.activation_patching(
        model, clean, corrupted, metric=lambda out: out.logits[:, -1, A] - out.logits[:, -1, B])
    assert torch.allclose(by_name.raw["resid_pre"], by_callable.raw["resid_pre"], atol=1e-5, rtol=0)
    token = ats.activation_patching(model, clean, corrupted, metric=TokenId(A))
    with torch.no_grad():
        expected = model(input_ids=clean).logits[0, -1, A]
    assert token.clean_metric[0] == pytest.approx(float(expected), abs=1e-5)
    nxt = ats.activation_patching(model, clean, corrupted, metric=NextToken(), by="layer")
    with torch.no_grad():
        top = model(input_ids=clean).logits[0, -1].max()
    assert nxt.clean_metric[0] == pytest.approx(float(top), abs=1e-5)


def test_undefined_normalisation_is_reported_not_divided():
    model = build("llama")
    clean, _ = _pair()
    res = ats.activation_patching(model, clean, clean.clone(), metric=("logit_diff", A, B), by="layer")
    assert res.undefined == [True]
    assert torch.isnan(res.normalized["resid_pre"]).all()
    assert "undefined" in res.note
    assert torch.isfinite(res.raw["resid_pre"]).all()


def test_attribution_patching_correlates_with_exact_under_embedding_noise():
    """The named corruption: Gaussian noise of norm 0.1 ||e|| on each token embedding, tiny Llama."""
    from attnscope.interventions import EmbeddingNoise

    model = build("llama")
    clean, _ = _pair(n=10, seed=5)
    noise = EmbeddingNoise(0.1, seed=0)
    for by, sites in (("position", ("resid_pre", "attn_out", "mlp_out")), ("head", ("head_out",))):
        exact = ats.activation_patching(model, clean, noise, metric=("logit_diff", A, B), sites=sites, by=by)
        approx = ats.attribution_patching(model, clean, noise, metric=("logit_diff", A, B), sites=sites, by=by)
        cmp = approx.compare(exact)
        print(by, cmp)
        assert cmp.correlation >= 0.9
        assert approx.corrupted_metric[0] == pytest.approx(float(exact.corrupted_metric[0]), abs=1e-6)


def test_attribution_patching_equals_plain_autograd():
    """(a_clean - a_corrupted) . dM/da at the last layer's output, computed here with a plain hook and autograd."""
    model = build("llama")
    clean, corrupted = _pair()
    approx = ats.attribution_patching(model, clean, corrupted, metric=("logit_diff", A, B), sites=("resid_post",),
                                      layers=[-1])
    blocks, _ = _modules(model, "llama")
    a_clean = _record(model, blocks[-1], clean, pre=False)
    store = {}

    def keep(m, a, o):
        store["x"] = o
        return o

    h = blocks[-1].register_forward_hook(keep)
    try:
        logits = model(input_ids=corrupted).logits
    finally:
        h.remove()
    value = logits[0, -1, A] - logits[0, -1, B]
    (grad,) = torch.autograd.grad(value, store["x"])
    expected = ((a_clean - store["x"].detach()) * grad).sum(-1)[0].double() + float(value)
    assert torch.allclose(approx.raw["resid_post"][0, 0], expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["bert", "gpt_neox_serial"])
def test_lower_layer_reuse_on_other_families(kind):
    """Encoders (no KV prefix) and GPT-NeoX reuse the lower layers only; equal to full forwards."""
    model = build(kind)
    clean, corrupted = _pair(n=7, seed=4)
    if kind == "bert":
        def metric(out):
            return out.last_hidden_state[:, 0].sum(-1)
    else:
        metric = ("logit_diff", A, B)
    sites = ("resid_pre", "attn_out", "mlp_hidden")
    fast = ats.activation_patching(model, clean, corrupted, metric=metric, sites=sites)
    slow = ats.activation_patching(model, clean, corrupted, metric=metric, sites=sites, reuse=False, batch_size=1)
    for site in sites:
        assert torch.allclose(fast.raw[site], slow.raw[site], atol=1e-5, rtol=0), site
