"""float16 and bfloat16 models end to end, with accuracy bounds stated against the float32 model.

The bound: attnscope on the half-precision model is at most 1.5x as far from the float32 oracle as the plain half
computation is (Hugging Face's own eager attention for capture; Captum's IntegratedGradients on the half model for
IG; the half model's own logits for the lens), per family (Llama, GPT-2, BERT). Results come back in float32:
probabilities are computed in float32 from half q/k, gradients accumulate in float32.
"""

from __future__ import annotations

import copy

import pytest
import torch
from attribution_models import tiny_bert, tiny_gpt2, tiny_llama, word_tokenizer
from tiny_models import batch, build

import attnscope as ats

HALF = [torch.float16, torch.bfloat16]
FAMILIES = ["llama", "gpt2", "bert"]


def _err(a, b):
    return (a.double() - b.double()).abs().max().item()


def _mean_err(a, b):
    return (a.double() - b.double()).abs().mean().item()


def _eager_attentions(model, inputs):
    with torch.no_grad():
        return torch.stack(model(**inputs, output_attentions=True).attentions).float()


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("family", FAMILIES)
def test_capture_weights(family, dtype):
    inputs = batch(family, None)
    eager32 = build(family, attn="eager")
    ref = _eager_attentions(eager32, inputs)
    err_hf = _err(_eager_attentions(copy.deepcopy(eager32).to(dtype), inputs), ref)
    ours = ats.capture_attention(build(family).to(dtype), inputs)
    assert ours.weights.dtype == torch.float32
    err_ours = _err(ours.weights, ref)
    assert err_ours <= 1.5 * err_hf, (err_ours, err_hf)
    mean = ats.capture_attention(build(family).to(dtype), inputs, reduce="mean").weights
    assert _err(mean, ref.mean(2)) <= 1.5 * err_hf


def _ig_case(family):
    if family == "bert":
        tok, model = word_tokenizer(True), tiny_bert()
        embed, target = model.bert.embeddings.word_embeddings, 2
    else:
        tok, model = word_tokenizer(False), tiny_gpt2() if family == "gpt2" else tiny_llama()
        embed, target = model.get_input_embeddings(), 7
    with torch.no_grad():
        embed.weight.mul_(20)  # gradients worth comparing on a random model
    return tok, model, embed, target


def _captum_ig(model, embed, enc, target, n_steps):
    captum_attr = pytest.importorskip("captum.attr")
    names = [k for k in enc if k != "input_ids"]

    def forward(e, *extra):  # captum repeats the extra arguments along with the interpolation points
        logits = model(inputs_embeds=e, **dict(zip(names, extra))).logits
        return logits if logits.dim() == 2 else logits[:, -1]

    x = embed(enc["input_ids"]).detach()
    raw = captum_attr.IntegratedGradients(forward).attribute(x, baselines=torch.zeros_like(x), target=target,
                                                             additional_forward_args=tuple(enc[k] for k in names),
                                                             n_steps=n_steps, method="gausslegendre")
    return raw.float().sum(-1)


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("family", FAMILIES)
def test_integrated_gradients(family, dtype):
    tok, model, embed, target = _ig_case(family)
    enc = tok(["the cat sat on the mat", "a dog ran to the house", "he sat on a red rug"], return_tensors="pt",
              padding=True)
    assert bool(enc["attention_mask"].all())  # equal lengths: Captum's forward reads the last position
    ref = ats.attribute(model, enc, method="integrated_gradients", target=target, n_steps=16).scores
    half = copy.deepcopy(model).to(dtype)
    ours = ats.attribute(half, enc, method="integrated_gradients", target=target, n_steps=16)
    assert ours.scores.dtype == torch.float32 and torch.isfinite(ours.scores).all()
    plain = _captum_ig(half, half.get_input_embeddings() if family != "bert" else half.bert.embeddings.word_embeddings,
                       enc, target, 16) * enc["attention_mask"]
    # The mean error over all tokens of three texts: the max over one text's few tokens is a coin flip between two
    # half-precision roundings of the same forward.
    err_ours, err_plain = _mean_err(ours.scores, ref), _mean_err(plain, ref)
    assert err_ours <= 1.5 * err_plain, (err_ours, err_plain)


def _stat_means(weights, ids):
    """[layer, head, stat] means from materialised attentions (the eager side of bench/head_stats.py)."""
    from attnscope.analysis.head_stats import stats_from_weights

    valid = torch.ones_like(ids, dtype=torch.bool)
    per_layer = [stats_from_weights(w, ids, valid) for w in weights]
    return torch.stack([(s.sum(0) / c.sum(0)) for s, c in per_layer])


@pytest.mark.parametrize("dtype", HALF)
def test_lens_activations_and_head_stats(dtype):
    model32, half = build("llama"), build("llama").to(dtype)
    inputs = batch("llama", None)
    # Lens: the last layer's top-k probabilities against the float32 model's, within 1.5x of the half model's own.
    lens16 = ats.logit_lens(half, inputs, top_k=3)
    assert lens16.topk_probs.dtype == torch.float32
    ids = lens16.topk_ids[-1]
    with torch.no_grad():
        p32 = model32(**inputs).logits.float().softmax(-1).gather(-1, ids)
        p16 = half(**inputs).logits.float().softmax(-1).gather(-1, ids)
    assert _err(lens16.topk_probs[-1], p32) <= 1.5 * _err(p16, p32), (_err(lens16.topk_probs[-1], p32), _err(p16, p32))
    # Activations are the half model's own hidden states, exactly.
    acts = ats.capture_activations(half, inputs, sites=("resid_post",))["resid_post"]
    with torch.no_grad():
        hidden = half(**inputs, output_hidden_states=True).hidden_states
    assert _err(acts[:-1], torch.stack(hidden[1:-1])) == 0  # the last hidden state is after the final norm
    # Head statistics of the half model against the float32 model's, within 1.5x of the same statistics computed
    # from Hugging Face's eager half attentions.
    input_ids = inputs["input_ids"]
    stats32 = ats.head_stats(model32, None, input_ids, progress=False)
    stats16 = ats.head_stats(half, None, input_ids, progress=False)
    from attnscope.analysis.head_stats import STAT_NAMES

    names = [n for n in STAT_NAMES if n in stats32.scores and torch.isfinite(stats32.scores[n]).all()]
    cols = [STAT_NAMES.index(n) for n in names]
    ours = torch.stack([stats16.scores[n] for n in names], -1)
    ref = torch.stack([stats32.scores[n] for n in names], -1)
    eager32 = _stat_means(_eager_attentions(build("llama", attn="eager"), inputs), input_ids)[..., cols]
    eager16 = _stat_means(_eager_attentions(build("llama", attn="eager").to(dtype), inputs), input_ids)[..., cols]
    assert _err(ours, ref) <= 1.5 * _err(eager16, eager32), (_err(ours, ref), _err(eager16, eager32))


@pytest.mark.parametrize("dtype", HALF)
def test_generation_attribution(dtype):
    model32 = build("llama")
    prompt = batch("llama", None)["input_ids"][0, :6]
    want = ats.attribute_generation(model32, None, prompt, max_new_tokens=3, progress=False)
    cont = want.generated_ids
    got = ats.attribute_generation(build("llama").to(dtype), None, prompt, continuation=cont, progress=False)
    assert got.matrix.dtype == torch.float32 and torch.isfinite(got.matrix).all()
    # Stated bound: saliency of the half model within 10% (bfloat16) / 2% (float16) of the float32 model's, relative
    # to the largest score.
    bound = 0.1 if dtype == torch.bfloat16 else 0.02
    assert _err(got.matrix, want.matrix) <= bound * want.matrix.abs().max().item()
