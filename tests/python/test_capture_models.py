"""Captured attention equals eager output_attentions on tiny random models of many families."""

from __future__ import annotations

import pytest
import torch

import attnscope as ats

from tiny_models import batch, build, eager_attentions_with_grad

DECODERS = ["gpt2", "llama", "qwen2", "mistral", "gemma2", "gpt_oss"]
KINDS = ["bert", *DECODERS]


def eager_attentions(kind, inputs):
    model = build(kind, attn="eager")
    with torch.no_grad():
        out = model(**inputs, output_attentions=True)
    return torch.stack(out.attentions).float(), out


def query_rows(inputs):
    """[batch, query] mask of non-padding query rows."""
    return inputs["attention_mask"].bool()


@pytest.mark.parametrize("padding", [None, "left", "right"])
@pytest.mark.parametrize("kind", KINDS)
def test_weights_equal_eager(kind, padding):
    inputs = batch(kind, padding)
    model = build(kind)  # sdpa where the family supports it, else its default
    before = model.config._attn_implementation
    with torch.no_grad():
        plain = model(**inputs)
    res = ats.capture_attention(model, inputs)
    want, eager_out = eager_attentions(kind, inputs)
    assert res.weights.shape == want.shape
    rows = query_rows(inputs)[None, :, None, :, None].expand_as(want)
    assert (res.weights - want)[rows].abs().max().item() <= 1e-5
    # The model's outputs are unchanged by the capture (it keeps SDPA where SDPA is exact) ...
    with torch.no_grad():
        cap = ats.capture_attention(model, inputs, grad=True)
    first = plain[0]
    again = cap.outputs[0]
    keep = inputs["attention_mask"].bool()
    assert (first - again)[keep].abs().max().item() <= 1e-5
    # ... and where SDPA would ignore soft-capping or sinks, they equal eager's outputs.
    if kind in ("gemma2", "gpt_oss"):
        assert (again - eager_out[0])[keep].abs().max().item() <= 1e-5
    assert model.config._attn_implementation == before


def test_gemma2_softcap_actually_bites():
    inputs = batch("gemma2", None)
    model = build("gemma2", attn="eager")
    capped = ats.capture_attention(model, inputs).weights
    model.config.attn_logit_softcapping = None
    for layer in model.model.layers:
        layer.self_attn.attn_logit_softcapping = None
    uncapped = ats.capture_attention(model, inputs).weights
    assert (capped - uncapped).abs().max().item() > 1e-2


def test_mistral_window_is_shorter_than_input():
    inputs = batch("mistral", None, length=10)
    res = ats.capture_attention(build("mistral"), inputs)
    # Window 4: the last query sees exactly the last 4 keys.
    last = res.weights[:, 0, :, -1]
    assert last[..., :6].abs().max() == 0 and (last[..., 6:] > 0).all()


def test_bart_encoder_decoder_and_cross():
    model = build("bart")
    inputs = batch("bart", "right")
    inputs["decoder_input_ids"] = inputs["input_ids"][:, :6]
    res = ats.capture_attention(model, inputs)
    eager = build("bart", attn="eager")
    with torch.no_grad():
        out = eager(**inputs, output_attentions=True)
    enc_rows = inputs["attention_mask"].bool()[None, :, None, :, None]
    want = torch.stack(out.encoder_attentions)
    assert (res.encoder.weights - want)[enc_rows.expand_as(want)].abs().max() <= 1e-5
    assert (res.decoder.weights - torch.stack(out.decoder_attentions)).abs().max() <= 1e-5
    assert (res.cross.weights - torch.stack(out.cross_attentions)).abs().max() <= 1e-5


def test_minilm_real_weights(minilm_path):
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm_path)
    enc = tok(["A man is playing a guitar.", "The weather is lovely today, isn't it?"], padding=True,
              return_tensors="pt")
    model = AutoModel.from_pretrained(minilm_path).eval()
    res = ats.capture_attention(model, enc, tokenizer=tok)
    eager = AutoModel.from_pretrained(minilm_path, attn_implementation="eager").eval()
    with torch.no_grad():
        want = torch.stack(eager(**enc, output_attentions=True).attentions)
    rows = enc["attention_mask"].bool()[None, :, None, :, None].expand_as(want)
    assert (res.weights - want)[rows].abs().max().item() <= 1e-5
    assert res.tokens[0][0] == "[CLS]"
    frame = res.to_pandas(threshold=0.1)
    assert set(frame.columns) >= {"layer", "batch", "head", "query", "key", "weight", "query_token", "key_token"}
    assert (frame["weight"] > 0.1).all()


def test_bfloat16_error_at_most_1_5x_eager_bfloat16():
    inputs = batch("llama", "left")
    ref, _ = eager_attentions("llama", inputs)
    eager16 = build("llama", attn="eager").to(torch.bfloat16)
    with torch.no_grad():
        e16 = torch.stack(eager16(**inputs, output_attentions=True).attentions).float()
    ours = ats.capture_attention(build("llama").to(torch.bfloat16), inputs).weights
    rows = query_rows(inputs)[None, :, None, :, None].expand_as(ref)
    err_eager = (e16 - ref)[rows].abs().max().item()
    err_ours = (ours - ref)[rows].abs().max().item()
    assert err_ours <= 1.5 * err_eager, (err_ours, err_eager)


@pytest.mark.parametrize("kind", ["llama", "mistral"])
def test_generate_matches_one_forward(kind):
    model = build(kind)
    inputs = batch(kind, "left", length=6)
    with torch.no_grad(), ats.capture(model) as cap:
        seq = model.generate(**inputs, max_new_tokens=12, do_sample=False, min_new_tokens=12, pad_token_id=0)
    res = cap.result
    total = seq.shape[1]
    assert res.weights.shape[-2:] == (total - 1, total)
    mask = torch.cat([inputs["attention_mask"], torch.ones(2, total - 6, dtype=torch.long)], dim=1)
    want, _ = eager_attentions(kind, {"input_ids": seq, "attention_mask": mask})
    rows = mask.bool()[:, : total - 1][None, :, None, :, None].expand_as(res.weights)
    got = res.weights
    assert (got - want[..., : total - 1, :])[rows].abs().max().item() <= 1e-5


def test_beam_search_is_refused_clearly():
    model = build("llama")
    inputs = batch("llama", None, length=4)
    with pytest.raises(ValueError, match=r"beam search \(num_beams=2\) is not supported"):
        with torch.no_grad(), ats.capture(model):
            model.generate(**inputs, max_new_tokens=3, num_beams=2, do_sample=False, pad_token_id=0)
    assert "generate" not in model.__dict__ and model.config._attn_implementation == "sdpa"


def test_grad_equals_eager_retain_grad():
    inputs = batch("llama", None)
    model = build("llama")
    res = ats.capture_attention(model, inputs, grad=True)
    res.outputs.logits[:, -1].logsumexp(-1).sum().backward()
    kept = eager_attentions_with_grad("llama", inputs, lambda out: out.logits[:, -1].logsumexp(-1))
    want = torch.stack([w.grad for w in kept])
    assert (res.grad - want).abs().max().item() <= 1e-5


def test_reduced_capture_matches_full():
    inputs = batch("qwen2", "right")
    model = build("qwen2")
    # Layer 1 alone in both captures: capturing every head of layer 0 unreduced would compute its output as P.V from
    # the captured probabilities, which may differ from SDPA's by an ulp and so change layer 1's inputs.
    full = ats.capture_attention(model, inputs, layers=[1]).weights
    red = ats.capture_attention(model, inputs, layers=[1], heads=[0, 3], reduce="mean", topk=2, entropy=True)
    assert (red.weights - full[:, :, [0, 3]].mean(2)).abs().max() <= 1e-6
    assert red.topk_values.shape == (1, 2, 2, 10, 2)
    sel = full[:, :, [0, 3]]
    assert torch.equal(red.topk_values, sel.topk(2, dim=-1).values)
    # Indices point at those values (ties, e.g. among zeros of causal rows, keep the lower key index).
    assert torch.equal(sel.gather(-1, red.topk_indices), red.topk_values)


# --- bad input ------------------------------------------------------------------------------------------

def test_layer_out_of_range():
    with pytest.raises(ValueError, match=r"layer 5 out of range: model has 2 layers \(0..1\)"):
        ats.capture_attention(build("llama"), batch("llama", None), layers=[5])


def test_head_out_of_range():
    with pytest.raises(ValueError, match=r"head 4 out of range: model has 4 heads \(0..3\)"):
        ats.capture_attention(build("llama"), batch("llama", None), heads=[4])


def test_inputs_without_input_ids():
    with pytest.raises(ValueError, match="inputs has no 'input_ids'"):
        ats.capture_attention(build("llama"), {"attention_mask": torch.ones(1, 3)})


def test_unknown_reduce():
    with pytest.raises(ValueError, match="unknown reduce 'median'"):
        ats.capture_attention(build("llama"), batch("llama", None), reduce="median")


def test_not_a_transformer():
    with pytest.raises(TypeError, match="not a transformer"):
        ats.capture_attention(torch.nn.Linear(3, 3), torch.ones(1, 3, dtype=torch.long))


def test_exception_inside_forward_restores_everything():
    model = build("llama")
    hooks_before = [(m, dict(m._forward_hooks), dict(m._forward_pre_hooks)) for m in model.modules()]
    from transformers.modeling_utils import AttentionInterface

    registered = set(AttentionInterface._global_mapping)
    with pytest.raises(RuntimeError, match="boom"):
        with ats.capture(model):
            model.config._attn_implementation  # inside the scope the implementation is attnscope's
            raise RuntimeError("boom")
    assert model.config._attn_implementation == "sdpa"
    assert set(AttentionInterface._global_mapping) == registered
    for m, fwd, pre in hooks_before:
        assert dict(m._forward_hooks) == fwd and dict(m._forward_pre_hooks) == pre

    def broken(*args, **kwargs):
        raise RuntimeError("inside forward")

    handle = model.model.layers[1].mlp.register_forward_hook(broken)
    try:
        with pytest.raises(RuntimeError, match="inside forward"):
            ats.capture_attention(model, batch("llama", None))
    finally:
        handle.remove()
    assert model.config._attn_implementation == "sdpa"
    assert set(AttentionInterface._global_mapping) == registered
