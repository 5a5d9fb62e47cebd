"""Tests shared by the encoder-decoder family modules (test_seq2seq_bart.py, _t5.py, _marian.py): each module
imports them and gives the ``kind`` fixture (the tiny_models family).

The oracles are not attnscope's code: Hugging Face eager attention (``output_attentions``), and Captum's Saliency /
InputXGradient / IntegratedGradients on a forward over the encoder's and the decoder's embeddings
(``inputs_embeds`` / ``decoder_inputs_embeds``), one Captum call per generated token for generation.
"""

from __future__ import annotations

import copy

import pytest
import torch
from test_views import load
from tiny_models import build, seq2seq_batch

import attnscope as ats
from attnscope.attribution.targets import Continuation
from attnscope.testing import assert_attention_matches_eager, assert_completeness, assert_passes_randomization_check

captum_attr = pytest.importorskip("captum.attr")

ATOL = 1e-5


class Tokens:
    """A tokenizer stand-in for labels: token id i is "t{i}"."""

    def convert_ids_to_tokens(self, ids):
        return [f"t{i}" for i in ids]


def embeddings(model, ids, dec):
    """The two embedding layers' outputs (what attnscope attributes to), computed directly."""
    return model.get_encoder().embed_tokens(ids).detach(), model.get_decoder().embed_tokens(dec).detach()


def forward(model, mask):
    """``f(enc_emb, dec_emb) -> logits``: the model on embedding-layer outputs. Marian scales the encoder's
    embedding-layer output outside the layer only when it embeds ids itself, the decoder's always."""
    enc_scale = getattr(model.get_encoder(), "embed_scale", 1.0) if model.config.model_type == "marian" else 1.0

    def fwd(e, d):
        return model(inputs_embeds=e * enc_scale, attention_mask=mask.repeat(e.shape[0] // mask.shape[0], 1),
                     decoder_inputs_embeds=d).logits

    return fwd


# --- capture -----------------------------------------------------------------------------------------------------
def test_capture_labels_tables_and_eager_parity(kind):
    model = build(kind)
    inputs = seq2seq_batch("right")
    res = ats.capture_attention(model, inputs, tokenizer=Tokens())
    ids, dec, mask = inputs["input_ids"], inputs["decoder_input_ids"], inputs["attention_mask"]
    src_tokens = [[f"t{i}" for i in row] for row in ids.tolist()]
    dec_tokens = [[f"t{i}" for i in row] for row in dec.tolist()]
    assert res.encoder.tokens == src_tokens and res.encoder.key_tokens is None
    assert res.decoder.tokens == dec_tokens and res.decoder.key_tokens is None
    assert res.cross.tokens == dec_tokens and res.cross.key_tokens == src_tokens
    assert torch.equal(res.cross.key_attention_mask, mask) and torch.equal(res.decoder.input_ids, dec)
    n_layers, heads, s, t = 2, 4, ids.shape[1], dec.shape[1]
    real = mask.sum(1).tolist()
    enc_df, dec_df, cross_df = (getattr(res, n).to_pandas() for n in ("encoder", "decoder", "cross"))
    assert len(enc_df) == n_layers * heads * sum(r * r for r in real)  # padding rows and keys left out
    assert len(dec_df) == n_layers * heads * 2 * t * (t + 1) // 2  # causal: the lower triangle
    assert len(cross_df) == n_layers * heads * sum(t * r for r in real)
    row = cross_df[(cross_df["batch"] == 1) & (cross_df["query"] == 2) & (cross_df["key"] == 3)
                   & (cross_df["layer"] == 1) & (cross_df["head"] == 0)].iloc[0]
    assert row.query_token == dec_tokens[1][2] and row.key_token == src_tokens[1][3]
    assert row.weight == float(res.cross.weights[1, 1, 0, 2, 3])
    # Eager attention is the oracle of every stack.
    assert_attention_matches_eager(model, inputs)


def test_decoder_inputs_are_built_as_generate_starts(kind):
    model = build(kind)
    inputs = seq2seq_batch("right")
    del inputs["decoder_input_ids"]
    res = ats.capture_attention(model, inputs)
    start = model.generation_config.decoder_start_token_id
    assert res.decoder.input_ids.tolist() == [[start], [start]]
    assert res.decoder.weights.shape[-2:] == (1, 1) and res.cross.weights.shape[-2:] == (1, inputs["input_ids"].shape[1])
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=1, do_sample=False)
    assert generated[:, 0].tolist() == [start, start]
    assert_attention_matches_eager(model, inputs)  # every stack equals eager with the decoder so started


# --- attribute ---------------------------------------------------------------------------------------------------
def _attribute_case(kind):
    model = build(kind)
    inputs = seq2seq_batch("right")
    ids, dec, mask = inputs["input_ids"], inputs["decoder_input_ids"], inputs["attention_mask"]
    e, d = embeddings(model, ids, dec)
    fwd = forward(model, mask)
    with torch.no_grad():  # the oracle's forward is the model's own
        torch.testing.assert_close(fwd(e, d), model(**inputs).logits, atol=1e-5, rtol=0)
        predicted = model(**inputs).logits[:, -1].argmax(-1)
    return model, inputs, e, d, fwd, predicted


def test_attribute_matches_captum_on_both_embeddings(kind):
    model, inputs, e, d, fwd, predicted = _attribute_case(kind)
    mask = inputs["attention_mask"].unsqueeze(-1)

    def last(e_, d_):
        return fwd(e_, d_)[:, -1]

    target = predicted.tolist()
    for method, ref in (
        ("saliency", captum_attr.Saliency(last).attribute((e, d), target=target, abs=True)),
        ("input_x_gradient", captum_attr.InputXGradient(last).attribute((e, d), target=target)),
    ):
        res = ats.attribute(model, inputs, method=method)  # default target: the next token after the prefix
        assert res.target == f"NextToken({target})"
        torch.testing.assert_close(res.raw, ref[0] * mask, atol=ATOL, rtol=0)
        torch.testing.assert_close(res.decoder_raw, ref[1], atol=ATOL, rtol=0)
        torch.testing.assert_close(res.decoder_scores, ref[1].sum(-1), atol=ATOL, rtol=0)
    res = ats.attribute(model, inputs, method="integrated_gradients", target=[5, 6], n_steps=16,
                        integration="gausslegendre")
    ref, delta = captum_attr.IntegratedGradients(last).attribute(
        (e, d), baselines=(torch.zeros_like(e), torch.zeros_like(d)), target=[5, 6], n_steps=16,
        method="gausslegendre", return_convergence_delta=True)
    # Padding positions get the input as baseline in attnscope (no attribution); Captum's zero baseline there
    # attributes to them: compare the real tokens, and the completeness of both.
    torch.testing.assert_close(res.raw, ref[0] * mask, atol=ATOL, rtol=0)
    torch.testing.assert_close(res.decoder_raw, ref[1], atol=ATOL, rtol=0)
    total = res.scores.sum(1) + res.decoder_scores.sum(1)
    torch.testing.assert_close(total - (res.f_input - res.f_baseline), res.delta, atol=ATOL, rtol=0)


def test_continuation_target_is_teacher_forced_on_the_decoder(kind):
    model = build(kind)
    inputs = seq2seq_batch("right")
    del inputs["decoder_input_ids"]
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    start = model.generation_config.decoder_start_token_id
    continuation = [7, 8, 9]
    dec = torch.tensor([[start, *continuation]] * 2)
    e, d = embeddings(model, ids, dec)
    fwd = forward(model, mask)

    def logp(e_, d_):
        lp = fwd(e_, d_).log_softmax(-1)
        return sum(lp[:, j, c] for j, c in enumerate(continuation))

    ref = captum_attr.InputXGradient(logp).attribute((e, d))
    res = ats.attribute(model, inputs, method="input_x_gradient", target=Continuation(continuation))
    torch.testing.assert_close(res.raw, ref[0] * mask.unsqueeze(-1), atol=ATOL, rtol=0)
    # The target prefix is the start token; the continuation's own positions are not attributed.
    assert res.decoder_raw.shape[1] == 1
    torch.testing.assert_close(res.decoder_raw, ref[1][:, :1], atol=ATOL, rtol=0)
    assert res.target == f"Continuation({continuation!r})"


def check_testing_helpers_accept_seq2seq(kind):
    model = build(kind)
    inputs = seq2seq_batch("right")
    # The cascade runs through the decoder's 2 blocks, then the encoder's 2, on source and target-prefix scores.
    rhos = assert_passes_randomization_check(model, inputs, max_rank_correlation=1.01)
    assert len(rhos) == 4 and all(0 <= r <= 1 for r in rhos)
    res = ats.attribute(model, inputs, method="integrated_gradients", n_steps=16, integration="gausslegendre")
    gap = (res.f_input - res.f_baseline).abs()
    if bool((res.delta.abs() <= 0.01 * gap).all()):
        assert_completeness(res)
    else:
        with pytest.raises(AssertionError, match="completeness above rtol"):
            assert_completeness(res)


# --- attribute_generation ----------------------------------------------------------------------------------------
def test_attribute_generation_matches_the_per_token_captum_loop(kind):
    model = build(kind)
    source = seq2seq_batch(None)["input_ids"][0].tolist()
    start = model.generation_config.decoder_start_token_id
    continuation = [11, 12, 13, 14]
    ids = torch.tensor([source])
    dec = torch.tensor([[start, *continuation]])
    e, d = embeddings(model, ids, dec)
    fwd = forward(model, torch.ones_like(ids))
    for method in ("saliency", "input_x_gradient"):
        res = ats.attribute_generation(model, None, source, continuation=continuation, method=method)
        assert res.matrix.shape == (4, len(source) + 1 + 4)
        rows = []
        for t, token in enumerate(continuation):
            def prob(e_, d_, t=t, token=token):
                return fwd(e_, d_)[:, t].softmax(-1)[:, token]

            if method == "saliency":
                ref = captum_attr.Saliency(prob).attribute((e, d), abs=True)
                rows.append(torch.cat([ref[0][0].sum(-1), ref[1][0].sum(-1)]))
            else:
                ref = captum_attr.InputXGradient(prob).attribute((e, d))
                rows.append(torch.cat([ref[0][0].sum(-1), ref[1][0].sum(-1)]))
        torch.testing.assert_close(res.matrix, torch.stack(rows), atol=ATOL, rtol=0)
        with torch.no_grad():
            probs = fwd(e, d)[0, :4].softmax(-1)[torch.arange(4), torch.tensor(continuation)]
        torch.testing.assert_close(res.step_scores, probs, atol=ATOL, rtol=0)
    # Occlusion against brute force: replace one source or prefix token and read every step.
    res = ats.attribute_generation(model, None, source, continuation=continuation, method="occlusion",
                                   replacement_token=3)
    full = torch.tensor(source + [start] + continuation)
    want = torch.zeros(4, full.shape[0])
    with torch.no_grad():
        for s in range(full.shape[0] - 1):
            occ = full.clone()
            occ[s] = 3
            logits = model(input_ids=occ[None, : len(source)], decoder_input_ids=occ[None, len(source):]).logits
            p = logits[0, :4].softmax(-1)[torch.arange(4), torch.tensor(continuation)]
            want[:, s] = res.step_scores - p
    mask = torch.arange(full.shape[0])[None, :] < (len(source) + 1 + torch.arange(4))[:, None]
    torch.testing.assert_close(res.matrix, want * mask, atol=ATOL, rtol=0)


def test_attribute_generation_generates_like_generate(kind, tmp_path):
    model = build(kind)
    source = seq2seq_batch(None)["input_ids"][0].tolist()
    res = ats.attribute_generation(model, Tokens(), source, max_new_tokens=3, method="integrated_gradients")
    with torch.no_grad():
        out = model.generate(input_ids=torch.tensor([source]), max_new_tokens=3, do_sample=False)
    assert res.generated_ids.tolist() == out[0, 1:].tolist()
    assert res.prefix_tokens == [f"t{model.generation_config.decoder_start_token_id}"]
    assert res.tokens == res.prompt_tokens + res.prefix_tokens + res.generated_tokens
    df = res.to_pandas()
    T = len(res.generated_tokens)
    assert len(df) == sum(res.context_len + t for t in range(T))
    assert set(df.source_part) == ({"prompt", "prefix", "generated"} if T > 1 else {"prompt", "prefix"})
    back = ats.load(res.save(tmp_path / "gen"))
    torch.testing.assert_close(back.matrix, res.matrix)
    assert back.prefix_tokens == res.prefix_tokens
    # attention: cross attention over the source, decoder self-attention over the prefix, from eager.
    att = ats.attribute_generation(model, None, source, continuation=[11, 12], method="attention")
    eager = copy.deepcopy(model)
    eager.set_attn_implementation("eager")
    start = model.generation_config.decoder_start_token_id
    with torch.no_grad():
        out = eager(input_ids=torch.tensor([source]), decoder_input_ids=torch.tensor([[start, 11, 12]]),
                    output_attentions=True)
    cross = torch.stack(out.cross_attentions)[:, 0].mean((0, 1))[:2]
    dec = torch.stack(out.decoder_attentions)[:, 0].mean((0, 1))[:2]
    torch.testing.assert_close(att.matrix, torch.cat([cross, dec], 1), atol=ATOL, rtol=0)


# --- views ------------------------------------------------------------------------------------------------------
def test_views_in_chromium(kind, browser, tmp_path):
    model = build(kind)
    inputs = seq2seq_batch("right")
    res = ats.capture_attention(model, inputs, tokenizer=Tokens())
    n_src = int(inputs["attention_mask"][1].sum())
    src = [f"t{i}" for i in inputs["input_ids"][1, :n_src].tolist()]
    dec = [f"t{i}" for i in inputs["decoder_input_ids"][1].tolist()]
    head = res.cross.view("head", batch=1).data
    assert head["queries"] == dec and head["keys"] == src
    grid = res.cross.view("model", batch=1).data
    assert (grid["nr"], grid["nc"], grid["row_labels"], grid["labels"]) == (5, n_src, dec, src)
    assert len(grid["cells"][0][0]) == 5 * n_src
    assert res.decoder.view("head", batch=1).data["keys"] == dec
    for stack, keys in (("encoder", n_src), ("decoder", 5), ("cross", n_src)):
        for view in ("head", "model"):
            path = getattr(res, stack).save_html(tmp_path / f"{stack}-{view}.html", kind=view, batch=1)
            assert load(browser, path) == []
            count = browser.find_element("css selector", ".attnscope-view").get_attribute("data-token-count")
            assert count == str(keys)
    attribution = ats.attribute(model, inputs, method="input_x_gradient", tokenizer=Tokens())
    assert load(browser, attribution.save_html(tmp_path / "attr.html")) == []
    labels = [example["label"] for example in attribution.view().data["examples"]]
    assert any("target prefix" in label for label in labels)
    generation = ats.attribute_generation(model, Tokens(), inputs["input_ids"][0].tolist(), continuation=[5, 6],
                                          method="saliency")
    assert load(browser, generation.save_html(tmp_path / "gen.html")) == []
    cols = generation.view().data["cols"]
    assert cols[len(generation.prompt_tokens)].endswith(generation.prefix_tokens[0])
