"""Activation capture at named sites, against output_hidden_states, independent hooks and the residual algebra."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import attnscope as ats
from attnscope.adapters.sites import base_model, find_family
from internal_models import FAMILIES, build
from tiny_models import batch

ALL_SITES = ("resid_pre", "resid_mid", "resid_post", "attn_out", "head_out", "mlp_out", "mlp_hidden")
_PARALLEL = {"gpt_neox"}  # no resid_mid: attention and MLP both read resid_pre


@pytest.fixture(scope="module")
def models():
    return {}


def model_of(models, kind):
    if kind not in models:
        models[kind] = build(kind)
    return models[kind]


def sites_of(kind):
    return tuple(s for s in ALL_SITES if not (kind in _PARALLEL and s == "resid_mid"))


def forward_hooks_left(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.mark.parametrize("kind", FAMILIES)
def test_resid_post_equals_output_hidden_states(models, kind):
    model = model_of(models, kind)
    inputs = batch("llama", "right", length=9)
    res = ats.capture_activations(model, inputs, sites=("resid_pre", "resid_post"))
    with torch.no_grad():
        hidden = model(**inputs, output_hidden_states=True).hidden_states
    post, pre = res.get("resid_post"), res.get("resid_pre")
    n = post.shape[0]
    assert post.shape == (n, 2, 9, hidden[0].shape[-1])
    for i in range(n):
        torch.testing.assert_close(pre[i], hidden[i], atol=1e-6, rtol=0)
    for i in range(n - 1):
        torch.testing.assert_close(post[i], hidden[i + 1], atol=1e-6, rtol=0)
    family = find_family(model)
    last = post[-1]
    if family.final_norm is not None:  # decoders return the final norm's output as the last hidden state
        with torch.no_grad():
            last = base_model(model).get_submodule(family.final_norm)(last)
    torch.testing.assert_close(last, hidden[-1], atol=1e-6, rtol=0)


def _reference_hooks(model, kind, layer):
    """Each site read by hooks written here, from the model's own module names (not the adapter's table)."""
    base = base_model(model)
    if kind in ("llama", "qwen2", "mistral", "gemma2"):
        blk = base.layers[layer]
        return blk, blk.self_attn, blk.mlp, blk.mlp.down_proj, blk.self_attn.o_proj
    if kind == "gpt2":
        blk = base.h[layer]
        return blk, blk.attn, blk.mlp, blk.mlp.c_proj, blk.attn.c_proj
    if kind.startswith("gpt_neox"):
        blk = base.layers[layer]
        return blk, blk.attention, blk.mlp, blk.mlp.dense_4h_to_h, blk.attention.dense
    if kind in ("bert", "roberta"):
        blk = base.encoder.layer[layer]
        return blk, blk.attention.output.dense, blk.output.dense, blk.output.dense, blk.attention.output.dense
    blk = base.transformer.layer[layer]
    return blk, blk.attention.out_lin, blk.ffn, blk.ffn.lin2, blk.attention.out_lin


@pytest.mark.parametrize("kind", FAMILIES)
def test_every_site_matches_independent_hooks_and_the_residual_algebra(models, kind):
    model = model_of(models, kind)
    inputs = batch("llama", "left", length=8)
    sites = sites_of(kind)
    res = ats.capture_activations(model, inputs, sites=sites)
    for layer in range(2):
        blk, attn, mlp, down, out_proj = _reference_hooks(model, kind, layer)
        seen = {}
        hooks = [
            attn.register_forward_hook(lambda m, a, o: seen.__setitem__("attn", o[0] if isinstance(o, tuple) else o)),
            mlp.register_forward_hook(lambda m, a, o: seen.__setitem__("mlp", o[0] if isinstance(o, tuple) else o)),
            down.register_forward_pre_hook(lambda m, a: seen.__setitem__("hidden", a[0])),
            out_proj.register_forward_pre_hook(lambda m, a: seen.__setitem__("heads", a[0])),
            blk.register_forward_hook(lambda m, a, o: seen.__setitem__("post", o[0] if isinstance(o, tuple) else o)),
        ]
        try:
            with torch.no_grad():
                model(**inputs)
        finally:
            for h in hooks:
                h.remove()
        close = dict(atol=1e-6, rtol=0)
        torch.testing.assert_close(res.get("attn_out")[layer], seen["attn"], **close)
        torch.testing.assert_close(res.get("mlp_out")[layer], seen["mlp"], **close)
        torch.testing.assert_close(res.get("mlp_hidden")[layer], seen["hidden"], **close)
        torch.testing.assert_close(res.get("resid_post")[layer], seen["post"], **close)
        heads = res.get("head_out")[layer]
        assert heads.shape[-2] == model.config.num_attention_heads
        torch.testing.assert_close(heads.flatten(-2), seen["heads"], **close)
        # The residual algebra of pre-norm families (HF's own hidden states as the oracle of resid_pre/post).
        pre, post = res.get("resid_pre")[layer], res.get("resid_post")[layer]
        attn_out, mlp_out = res.get("attn_out")[layer], res.get("mlp_out")[layer]
        loose = dict(atol=1e-5, rtol=0)
        if kind in ("llama", "qwen2", "mistral", "gpt2", "gpt_neox_serial"):
            torch.testing.assert_close(res.get("resid_mid")[layer], pre + attn_out, **loose)
            torch.testing.assert_close(post, res.get("resid_mid")[layer] + mlp_out, **loose)
        elif kind == "gpt_neox":
            torch.testing.assert_close(post, pre + attn_out + mlp_out, **loose)
        elif kind == "gemma2":
            blk = base_model(model).layers[layer]
            with torch.no_grad():
                mid = pre + blk.post_attention_layernorm(attn_out)
                torch.testing.assert_close(res.get("resid_mid")[layer], mid, **loose)
                torch.testing.assert_close(post, mid + blk.post_feedforward_layernorm(mlp_out), **loose)


def _out_projection(model, kind, layer):
    base = base_model(model)
    if kind == "gpt2":
        conv = base.h[layer].attn.c_proj
        return conv.weight, conv.bias  # x @ W + b
    proj = _reference_hooks(model, kind, layer)[4]
    return proj.weight.T, proj.bias


@pytest.mark.parametrize("kind", FAMILIES)
def test_head_out_through_the_output_projection_sums_to_attn_out(models, kind):
    model = model_of(models, kind)
    res = ats.capture_activations(model, batch("llama", None, length=7), sites=("head_out", "attn_out"))
    for layer in range(2):
        w, b = _out_projection(model, kind, layer)
        heads = res.get("head_out")[layer].double()  # [batch, pos, head, d_head]
        h, d = heads.shape[-2:]
        per_head = torch.einsum("bphd,hde->bphe", heads, w.double().reshape(h, d, -1))
        total = per_head.sum(-2) + (b.double() if b is not None else 0.0)
        torch.testing.assert_close(total, res.get("attn_out")[layer].double(), atol=1e-5, rtol=0)


def test_head_out_equals_eager_attention_times_values():
    """head_out of Llama against P·V from eager output_attentions and the value projection."""
    model = build("llama")
    model.set_attn_implementation("eager")
    inputs = batch("llama", "right", length=8)
    res = ats.capture_activations(model, inputs, sites="head_out", layers=1)
    attn = base_model(model).layers[1].self_attn
    kept = {}
    hook = attn.v_proj.register_forward_hook(lambda m, a, o: kept.__setitem__("v", o))
    try:
        with torch.no_grad():
            probs = model(**inputs, output_attentions=True).attentions[1]  # [batch, head, q, k]
    finally:
        hook.remove()
    b, n = inputs["input_ids"].shape
    v = kept["v"].reshape(b, n, model.config.num_key_value_heads, -1).transpose(1, 2)
    v = v.repeat_interleave(model.config.num_attention_heads // model.config.num_key_value_heads, dim=1)
    expected = (probs @ v).transpose(1, 2)  # [batch, pos, head, d_head]
    torch.testing.assert_close(res.get("head_out")[0], expected, atol=1e-6, rtol=0)


def test_mlp_hidden_is_the_gated_product():
    model = build("llama")
    res = ats.capture_activations(model, batch("llama", None), sites="mlp_hidden", layers=0)
    mlp = base_model(model).layers[0].mlp
    kept = {}
    hook = mlp.register_forward_pre_hook(lambda m, a: kept.__setitem__("x", a[0]))
    try:
        with torch.no_grad():
            model(**batch("llama", None))
            expected = mlp.act_fn(mlp.gate_proj(kept["x"])) * mlp.up_proj(kept["x"])
    finally:
        hook.remove()
    torch.testing.assert_close(res.get("mlp_hidden")[0], expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", ["llama", "gpt2", "gpt_neox"])
def test_under_generate_equals_one_forward_over_the_final_sequence(models, kind):
    model = model_of(models, kind)
    prompt = batch("llama", None, length=6)["input_ids"]
    sites = ("resid_post", "mlp_hidden", "head_out")
    before = forward_hooks_left(model)  # transformers keeps hooks of its own (output recorders)
    with ats.capture(model, layers=[], activations={"sites": sites}) as cap, torch.no_grad():
        out = model.generate(prompt, max_new_tokens=5, do_sample=False, pad_token_id=0)
    full = ats.capture_activations(model, out, sites=sites)
    assert out.shape[1] == 11
    for site in sites:
        got = cap.activations.get(site)
        # the last generated token is never fed back: the capture covers all positions but the last
        assert got.shape[2] == out.shape[1] - 1
        torch.testing.assert_close(got, full.get(site)[:, :, :-1], atol=1e-5, rtol=0)
    assert forward_hooks_left(model) == before


def test_reductions_inside_hooks_match_the_full_tensor(models):
    model = model_of(models, "llama")
    inputs = batch("llama", "right", length=9)
    full = ats.capture_activations(model, inputs, sites=("resid_post", "mlp_hidden"))
    norm = ats.capture_activations(model, inputs, sites=("resid_post", "mlp_hidden"), reduce="norm")
    torch.testing.assert_close(norm.get("mlp_hidden"), full.get("mlp_hidden").norm(dim=-1), atol=1e-5, rtol=1e-5)
    mean = ats.capture_activations(model, inputs, sites="resid_post", reduce="mean")
    mask = inputs["attention_mask"].float()
    expected = (full.get("resid_post") * mask[None, :, :, None]).sum(2) / mask.sum(1)[None, :, None]
    torch.testing.assert_close(mean.get("resid_post"), expected, atol=1e-5, rtol=1e-5)
    top = ats.capture_activations(model, inputs, sites="mlp_hidden", reduce=("topk", 5))
    ref = full.get("mlp_hidden").topk(5, dim=-1)
    torch.testing.assert_close(top.get("mlp_hidden"), ref.values)
    assert torch.equal(top.indices("mlp_hidden"), ref.indices)
    sel = ats.capture_activations(model, inputs, sites="resid_post", layers=[-1], positions=[0, -1])
    torch.testing.assert_close(sel.get("resid_post")[0], full.get("resid_post")[1][:, [0, 8]])
    assert sel.layers == [1] and sel.positions == [0, 8]


def test_module_paths_for_any_model(models):
    model = model_of(models, "llama")
    res = ats.capture_activations(model, batch("llama", None), sites={"act": "model.layers.{i}.mlp.act_fn"})
    gate = ats.capture_activations(model, batch("llama", None), sites={"gate": "model.layers.{i}.mlp.gate_proj"})
    torch.testing.assert_close(res.get("act"), torch.nn.functional.silu(gate.get("gate")))


def test_hooks_removed_after_an_exception(models):
    model = model_of(models, "gpt2")
    before = forward_hooks_left(model)
    with pytest.raises(RuntimeError, match="boom"):
        with ats.capture(model, layers=[], activations=("resid_post", "mlp_hidden")):
            model(**batch("llama", None))
            raise RuntimeError("boom")
    assert forward_hooks_left(model) == before
    with pytest.raises(ValueError, match="layer 7 out of range"):
        ats.capture_activations(model, batch("llama", None), layers=[0, 7])
    assert forward_hooks_left(model) == before


def test_bad_inputs_name_what_was_wrong(models):
    model = model_of(models, "llama")
    inputs = batch("llama", None)
    with pytest.raises(ValueError, match=r"unknown site 'resid'.*resid_pre, resid_mid, resid_post, attn_out"):
        ats.capture_activations(model, inputs, sites="resid")
    with pytest.raises(ValueError, match=r"layer 2 out of range: model has 2 layers \(0..1\)"):
        ats.capture_activations(model, inputs, layers=2)
    with pytest.raises(ValueError, match=r"module path 'model.layers.0.mlp.nope' does not exist"):
        ats.capture_activations(model, inputs, sites={"x": "model.layers.{i}.mlp.nope"})
    with pytest.raises(ValueError, match="top_k must be a positive integer, got 0"):
        ats.capture_activations(model, inputs, reduce=("topk", 0))
    with pytest.raises(ValueError, match="unknown reduce 'max'"):
        ats.capture_activations(model, inputs, reduce="max")
    with pytest.raises(ValueError, match=r"position 12 out of range: the input has 10 positions"):
        ats.capture_activations(model, inputs, positions=12)
    with pytest.raises(KeyError, match="site 'mlp_out' was not captured"):
        ats.capture_activations(model, inputs).get("mlp_out")
    neox = model_of(models, "gpt_neox")
    with pytest.raises(ValueError, match="site 'resid_mid' does not exist.*use_parallel_residual"):
        ats.capture_activations(neox, inputs, sites="resid_mid")


def test_unknown_family_lists_the_supported_ones_and_module_paths_work():
    import transformers as tf

    cfg = tf.OPTConfig(vocab_size=97, hidden_size=32, ffn_dim=48, num_hidden_layers=2, num_attention_heads=4,
                       max_position_embeddings=64, word_embed_proj_dim=32)
    model = tf.OPTForCausalLM(cfg).eval()
    inputs = batch("llama", None)
    with pytest.raises(ValueError, match=r"no site adapter for OPTForCausalLM.*gpt2.*llama.*sites=\{'mlp_hidden'"):
        ats.capture_activations(model, inputs, sites="mlp_hidden")
    res = ats.capture_activations(model, inputs, sites={"fc1": "model.decoder.layers.{i}.fc1"})
    assert res.get("fc1").shape == (2, 1, 10, 48)


def test_residual_views_and_persistence(models, tmp_path):
    model = model_of(models, "llama")
    res = ats.capture_activations(model, batch("llama", "right"), sites=("resid_post", "mlp_out"))
    norms = res.norms()
    torch.testing.assert_close(norms, res.get("resid_post").norm(dim=-1))
    sim = res.layer_similarity()
    assert sim.shape == (2, 2) and torch.allclose(sim.diagonal(), torch.ones(2, dtype=sim.dtype))
    x = res.get("resid_post")[:, 0].double()
    expected = torch.nn.functional.cosine_similarity(x[0], x[1], dim=-1).mean()
    assert float(sim[0, 1]) == pytest.approx(float(expected), abs=1e-9)
    proj = res.projection()
    assert proj.shape == (2, 10, 2)
    for kind in ("norms", "similarity", "projection"):
        assert res.plot(kind) is not None
    df = res.to_pandas()
    assert set(df.site) == {"resid_post", "mlp_out"} and len(df) == 2 * 2 * 2 * 10
    back = ats.load(res.save(tmp_path / "act"))
    assert isinstance(back, ats.ActivationResult) and torch.equal(back.get("mlp_out"), res.get("mlp_out"))
    assert back.layers == res.layers and back.sites == res.sites
