"""attribute_generation: one teacher-forced pass for all generated tokens, against per-token loops (attnscope's own
single-target attribute and Captum's LLMGradientAttribution), brute-force occlusion and eager attention."""

from __future__ import annotations

import warnings

import pytest
import torch

import attnscope as ats
from attnscope.attribution.targets import Custom

from attribution_models import tiny_gpt2, tiny_llama, word_tokenizer

PROMPT = "the cat sat on the"
CONTINUATION = "mat and ran to the house"
MODELS = {"llama": tiny_llama, "gpt2": tiny_gpt2}


def _step_value(kind: str, token: int, alternative: int | None = None):
    """The value of one step from the logits of the last position (the per-token oracle's target)."""

    def fn(outputs):
        logits = outputs.logits[:, -1].double()
        if kind == "logit":
            return logits[:, token]
        if kind == "contrast":
            return logits[:, token] - logits[:, alternative]
        lp = logits.log_softmax(-1)[:, token]
        return lp if kind == "logprob" else lp.exp()

    return fn


def _loop(model, ids, prompt_len, method, kind, alternative=None, **kwargs):
    """Per-token loop of attnscope's single-target attribute: row t attributes token P + t on ids[:P + t]."""
    rows = []
    for t in range(ids.shape[0] - prompt_len):
        prefix = ids[None, : prompt_len + t]
        res = ats.attribute(model, prefix, method=method, target=Custom(_step_value(kind, int(ids[prompt_len + t]), alternative)), **kwargs)
        row = torch.zeros(ids.shape[0])
        row[: prompt_len + t] = res.scores[0].float()
        rows.append(row)
    return torch.stack(rows)


def _ids(res):
    return torch.cat([res.prompt_ids, res.generated_ids])


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
@pytest.mark.parametrize("method", ["saliency", "input_x_gradient"])
@pytest.mark.parametrize("target", ["prob", "logprob", "logit", "contrast"])
def test_gradient_methods_equal_the_per_token_loop(kind, method, target):
    model, tok = MODELS[kind](), word_tokenizer(False)
    alt = tok.convert_tokens_to_ids("dog")
    tgt = ("contrast", "dog") if target == "contrast" else target
    res = ats.attribute_generation(model, tok, PROMPT, continuation=CONTINUATION, method=method, target=tgt)
    ref = _loop(model, _ids(res), res.prompt_len, method, target, alt)
    assert res.matrix.shape == (6, 11)
    torch.testing.assert_close(res.matrix, ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("method", ["saliency", "input_x_gradient"])
def test_equals_captum_llm_gradient_attribution(method):
    from captum.attr import LayerGradientXActivation, LLMGradientAttribution, TextTokenInput

    class AbsGradient(LayerGradientXActivation):
        """Captum's layer gradient (multiply_by_inputs=False), absolute: saliency inside LLMGradientAttribution."""

        def attribute(self, *args, **kwargs):
            return super().attribute(*args, **kwargs).abs()

    model, tok = tiny_llama(), word_tokenizer(False)
    layer = model.model.embed_tokens
    inner = AbsGradient(model, layer, multiply_by_inputs=False) if method == "saliency" else LayerGradientXActivation(model, layer)
    captum = LLMGradientAttribution(inner, tok).attribute(TextTokenInput(PROMPT, tok), target=CONTINUATION)
    res = ats.attribute_generation(model, tok, PROMPT, continuation=CONTINUATION, method=method, target="logprob")
    assert captum.output_tokens == res.generated_tokens
    # Captum attributes to the prompt only; our matrix also has the generated tokens' columns.
    torch.testing.assert_close(res.matrix[:, : res.prompt_len], captum.token_attr.float(), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_integrated_gradients_equal_the_per_token_loop_at_equal_steps(kind):
    model, tok = MODELS[kind](), word_tokenizer(False)
    res = ats.attribute_generation(model, tok, PROMPT, continuation=CONTINUATION, method="integrated_gradients",
                                   target="logprob", n_steps=8)
    ref = _loop(model, _ids(res), res.prompt_len, "integrated_gradients", "logprob", n_steps=8)
    torch.testing.assert_close(res.matrix, ref, atol=1e-5, rtol=1e-4)
    assert res.n_forwards <= 1 + 8  # one forward per interpolation point serves all steps


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients"])
def test_is_grads_batched_runs_without_a_batching_fallback_and_agrees_with_the_expanded_batch(method):
    model, tok = tiny_llama(), word_tokenizer(False)
    steps = {"n_steps": 4} if method == "integrated_gradients" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fast = ats.attribute_generation(model, tok, PROMPT, continuation=CONTINUATION, method=method, **steps)
    assert fast.engine == "is_grads_batched"
    expanded = ats.attribute_generation(model, tok, PROMPT, continuation=CONTINUATION, method=method, **steps,
                                        engine="expanded", batch_size=3)
    assert expanded.engine == "expanded"
    torch.testing.assert_close(fast.matrix, expanded.matrix, atol=1e-6, rtol=1e-5)
    small = ats.attribute_generation(model, tok, PROMPT, continuation=CONTINUATION, method=method, **steps,
                                     batch_size=2)
    torch.testing.assert_close(fast.matrix, small.matrix, atol=1e-6, rtol=1e-5)


def test_generates_greedily_once_and_reports_step_probabilities():
    model, tok = tiny_llama(), word_tokenizer(False)
    res = ats.attribute_generation(model, tok, PROMPT, max_new_tokens=5)
    ids = tok(PROMPT, return_tensors="pt")["input_ids"]
    greedy = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=5, do_sample=False,
                            pad_token_id=tok.pad_token_id)[0, ids.shape[1]:]
    assert res.generated_ids.tolist() == greedy.tolist()
    assert res.generated_tokens == tok.convert_ids_to_tokens(greedy.tolist())
    with torch.no_grad():
        probs = model(torch.cat([ids[0], greedy])[None]).logits[0].softmax(-1)
    expected = probs[ids.shape[1] - 1 + torch.arange(5), greedy]
    torch.testing.assert_close(res.step_scores, expected, atol=1e-6, rtol=1e-5)
    # Zero right of the diagonal: step t sees the prompt and the t tokens generated before it.
    for t in range(5):
        assert torch.all(res.matrix[t, res.prompt_len + t:] == 0)
        assert torch.any(res.matrix[t, : res.prompt_len + t] != 0)


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_occlusion_with_kv_reuse_equals_full_forwards(kind):
    model, tok = MODELS[kind](), word_tokenizer(False)
    res = ats.attribute_generation(model, tok, PROMPT, continuation=CONTINUATION, method="occlusion",
                                   target="logprob", batch_size=4)
    assert res.engine == "kv_reuse"
    ids = _ids(res)
    P, T = res.prompt_len, len(res.generated_ids)
    steps = torch.arange(T)
    with torch.no_grad():
        base = model(ids[None]).logits[0].log_softmax(-1)[P - 1 + steps, ids[P:]]
        ref = torch.zeros(T, P + T)
        for s in range(P + T - 1):
            occluded = ids.clone()
            occluded[s] = tok.pad_token_id
            lp = model(occluded[None]).logits[0].log_softmax(-1)[P - 1 + steps, ids[P:]]
            ref[:, s] = base - lp
    ref *= (torch.arange(P + T)[None] < (P + steps)[:, None])
    torch.testing.assert_close(res.matrix, ref, atol=1e-5, rtol=1e-4)


def test_attention_is_the_head_and_layer_mean_of_eager_attention():
    model, tok = tiny_llama(), word_tokenizer(False)
    res = ats.attribute_generation(model, tok, PROMPT, continuation=CONTINUATION, method="attention")
    ids = _ids(res)
    P, T = res.prompt_len, len(res.generated_ids)
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            att = torch.stack(model(ids[None], output_attentions=True).attentions)  # [layer, 1, head, q, k]
    finally:
        model.set_attn_implementation("sdpa")
    ref = att[:, 0].mean(dim=(0, 1))[P - 1 + torch.arange(T)]
    torch.testing.assert_close(res.matrix, ref, atol=1e-5, rtol=1e-4)


def test_result_table_view_and_save_load(tmp_path):
    model, tok = tiny_llama(), word_tokenizer(False)
    res = ats.attribute_generation(model, tok, PROMPT, continuation=CONTINUATION, method="input_x_gradient")
    df = res.to_pandas()
    P, T = res.prompt_len, len(res.generated_tokens)
    assert len(df) == sum(P + t for t in range(T))
    row = df[(df.step == 2) & (df.source_position == 6)].iloc[0]
    assert row.generated_token == res.generated_tokens[2] and row.source_token == res.generated_tokens[1]
    assert row.source_part == "generated" and row.score == pytest.approx(float(res.matrix[2, 6]))
    assert res.prompt_totals().shape == (P,)
    html = res.view().html
    assert f'data-token-count="{P + T}"' in html
    back = ats.load(res.save(tmp_path / "gen"))
    assert isinstance(back, ats.GenerationAttribution)
    torch.testing.assert_close(back.matrix, res.matrix)
    assert back.generated_tokens == res.generated_tokens and back.engine == res.engine


# --- bad input ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"prompt": ""}, ValueError, "prompt is empty"),
        ({"prompt": "   "}, ValueError, "prompt is empty"),
        ({"prompt": []}, ValueError, "prompt is empty"),
        ({"prompt": ["a b", "c d"]}, TypeError, "one prompt at a time"),
        ({"max_new_tokens": 0}, ValueError, "max_new_tokens must be >= 1"),
        ({"max_new_tokens": 2.5}, TypeError, "max_new_tokens must be an int"),
        ({"continuation": ""}, ValueError, "tokenizes to no token"),
        ({"continuation": "   "}, ValueError, "tokenizes to no token"),
        ({"continuation": []}, ValueError, "no token ids"),
        ({"method": "lime"}, ValueError, "unknown method 'lime' for generation"),
        ({"target": "probability"}, ValueError, "unknown target 'probability'"),
        ({"target": ("contrast", ["dog", "cat"])}, ValueError, "2 alternative tokens for 6 generated"),
        ({"target": ("contrast", 10_000)}, ValueError, "out of range"),
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
        ({"engine": "vmap"}, ValueError, "unknown engine 'vmap'"),
        ({"replacement_token": 0}, ValueError, "method='saliency' takes no replacement_token= (only occlusion do)"),
        ({"generation_kwargs": {"do_sample": True}}, ValueError, "generation_kwargs apply to generation only"),
        ({"prompt": [1, 2, 999]}, ValueError, "prompt holds token id 999, outside the model's vocabulary"),
        ({"continuation": [5, 999]}, ValueError, "continuation holds token id 999, outside the model's vocabulary"),
    ],
)
def test_bad_input_gets_a_clear_error(kwargs, error, message):
    model, tok = tiny_llama(), word_tokenizer(False)
    args = {"prompt": PROMPT, "continuation": CONTINUATION, **kwargs}
    prompt = args.pop("prompt")
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        ats.attribute_generation(model, tok, prompt, **args)


def test_models_that_are_not_causal_lms_are_refused():
    from attribution_models import tiny_bert

    with pytest.raises(ValueError, match="no logits"):
        ats.attribute_generation(tiny_bert(), word_tokenizer(True), PROMPT, continuation="mat")
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        ats.attribute_generation(object(), word_tokenizer(False), PROMPT)


def test_progress_bar_shows_on_request_and_is_silenceable(capsys):
    model, tok = tiny_llama(), word_tokenizer(False)
    ats.attribute_generation(model, tok, PROMPT, continuation=CONTINUATION, progress=True, batch_size=2)
    assert "attnscope generation gradients" in capsys.readouterr().err
    ats.attribute_generation(model, tok, PROMPT, continuation=CONTINUATION, progress=False, batch_size=1)
    assert capsys.readouterr().err == ""
