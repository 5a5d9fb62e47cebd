"""``ats.intervene`` against plain forward hooks: head ablation (zero, mean, resample), set and add at sites, under
``generate()`` too."""

from __future__ import annotations

import pytest
import torch

import attnscope as ats
from internal_models import build


def ids(n, seed=0, rows=1):
    return torch.randint(3, 90, (rows, n), generator=torch.Generator().manual_seed(seed))


def o_proj(model, kind, layer):
    return model.transformer.h[layer].attn.c_proj if kind == "gpt2" else model.model.layers[layer].self_attn.o_proj


def with_hook(module, hook, fn, pre=True):
    h = module.register_forward_pre_hook(hook) if pre else module.register_forward_hook(hook)
    try:
        with torch.no_grad():
            return fn()
    finally:
        h.remove()


@pytest.mark.parametrize("kind", ["llama", "gpt2", "qwen2"])
def test_zero_and_mean_ablation_equal_plain_hooks_on_the_output_projection(kind):
    model = build(kind)
    x, ref = ids(9), ids(9, 1, rows=3)
    heads, d = model.config.num_attention_heads, model.config.hidden_size // model.config.num_attention_heads
    layer, ablated = 1, [0, 2]

    def zero(m, a):
        z = a[0].clone()
        for h in ablated:
            z[..., h * d:(h + 1) * d] = 0
        return (z,)

    expected = with_hook(o_proj(model, kind, layer), zero, lambda: model(x).logits)
    with ats.intervene(model) as iv:
        iv.ablate_heads({layer: ablated})
        with torch.no_grad():
            got = model(x).logits
    assert torch.allclose(got, expected, atol=1e-5, rtol=0)

    store = {}
    with_hook(o_proj(model, kind, layer), lambda m, a: store.setdefault("z", a[0].clone()), lambda: model(ref))
    mean = store["z"].reshape(-1, heads * d).double().mean(0).float()

    def to_mean(m, a):
        z = a[0].clone()
        for h in ablated:
            z[..., h * d:(h + 1) * d] = mean[h * d:(h + 1) * d]
        return (z,)

    expected = with_hook(o_proj(model, kind, layer), to_mean, lambda: model(x).logits)
    with ats.intervene(model) as iv:
        iv.ablate_heads({layer: ablated}, how="mean", reference=ref)
        with torch.no_grad():
            got = model(x).logits
    assert torch.allclose(got, expected, atol=1e-5, rtol=0)


def test_resample_ablation_takes_a_reference_row_at_the_same_positions():
    model = build("llama")
    x, ref = ids(8), ids(8, 1, rows=1)  # one reference row: the draw is determined
    store = {}
    layer = o_proj(model, "llama", 0)
    with_hook(layer, lambda m, a: store.setdefault("z", a[0].clone()), lambda: model(ref))

    def swap(m, a):
        z = a[0].clone()
        z[..., 8:16] = store["z"][..., 8:16]
        return (z,)

    expected = with_hook(layer, swap, lambda: model(x).logits)
    with ats.intervene(model) as iv:
        iv.ablate_heads({0: [1]}, how="resample", reference=ref)
        with torch.no_grad():
            got = model(x).logits
        with pytest.raises(ValueError, match="reference batch has 8 positions"):
            model(ids(10))
    assert torch.allclose(got, expected, atol=1e-5, rtol=0)


def test_set_and_add_equal_plain_hooks_also_under_generate():
    model = build("llama")
    x = ids(6)
    vector = torch.randn(32, generator=torch.Generator().manual_seed(4))
    layer = model.model.layers[1]

    def steer(m, a, o):
        return o + vector

    expected = with_hook(layer, steer, lambda: model.generate(x, max_new_tokens=5, do_sample=False), pre=False)
    with ats.intervene(model) as iv:
        iv.add("resid_post", 1, vector)
        got = model.generate(x, max_new_tokens=5, do_sample=False)
    assert torch.equal(got, expected)
    plain = model.generate(x, max_new_tokens=5, do_sample=False)

    def set_pos(m, a):  # resid_pre of layer 0 at absolute positions 2 and 7 (7 is generated)
        h = a[0].clone()
        n, offset = h.shape[1], set_pos.offset
        for p in (2, 7):
            if offset <= p < offset + n:
                h[:, p - offset] = 0.5
        set_pos.offset += n
        return (h,)

    set_pos.offset = 0
    block = model.model.layers[0]
    handle = block.register_forward_pre_hook(set_pos)
    try:
        expected = model.generate(x, max_new_tokens=5, do_sample=False)
    finally:
        handle.remove()
    with ats.intervene(model) as iv:
        iv.set("resid_pre", 0, 0.5, positions=[2, 7])
        got = model.generate(x, max_new_tokens=5, do_sample=False)
    assert torch.equal(got, expected)
    assert torch.equal(model.generate(x, max_new_tokens=5, do_sample=False), plain)  # nothing left behind


def test_head_ablation_under_generate_and_set_of_one_head():
    model = build("gpt2")
    x = ids(5)
    d = 8

    def zero(m, a):
        z = a[0].clone()
        z[..., 3 * d:4 * d] = 0
        return (z,)

    expected = with_hook(o_proj(model, "gpt2", 1), zero, lambda: model.generate(x, max_new_tokens=4, do_sample=False))
    with ats.intervene(model) as iv:
        iv.ablate_heads({1: [3]})
        got = model.generate(x, max_new_tokens=4, do_sample=False)
    assert torch.equal(got, expected)
    with ats.intervene(model) as iv:
        iv.set("head_out", 1, 0.0, heads=[3])
        with torch.no_grad():
            by_site = model(x).logits
    expected = with_hook(o_proj(model, "gpt2", 1), zero, lambda: model(x).logits)
    assert torch.allclose(by_site, expected, atol=1e-6, rtol=0)


def test_clear_and_edits_in_order():
    model = build("llama")
    x = ids(6)
    with torch.no_grad():
        plain = model(x).logits
    with ats.intervene(model) as iv:
        iv.set("resid_post", 0, 1.0).add("resid_post", 0, 1.0)  # set then add: 2.0 everywhere
        with torch.no_grad():
            both = model(x).logits
        iv.clear()
        iv.set("resid_post", 0, 2.0)
        with torch.no_grad():
            two = model(x).logits
        iv.clear()
        with torch.no_grad():
            cleared = model(x).logits
    assert torch.allclose(both, two, atol=1e-6, rtol=0)
    assert torch.equal(cleared, plain)
