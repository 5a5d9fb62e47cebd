"""attention_x_gradient equals the Chefer et al. rule applied to eager attentions with retain_grad()."""

from __future__ import annotations

import pytest
import torch

from attnscope.attribution.gradient.attention_x_gradient import attention_x_gradient, relevance_rows

from tiny_models import batch, build, eager_attentions_with_grad


def chefer_reference(kind, inputs, score, position):
    kept = eager_attentions_with_grad(kind, inputs, score)
    n = inputs["input_ids"].shape[1]
    relevance = torch.eye(n).repeat(inputs["input_ids"].shape[0], 1, 1)
    for a in kept:
        abar = (a.grad * a).clamp(min=0).mean(1)
        relevance = relevance + abar @ relevance
    return relevance_rows(relevance, inputs["attention_mask"], position)


@pytest.mark.parametrize("kind,position", [("llama", "last"), ("qwen2", "last"), ("bert", "first")])
def test_matches_chefer_on_eager(kind, position):
    inputs = batch(kind, "right" if kind == "bert" else "left")

    def score(outputs):
        out = outputs.logits[:, -1] if hasattr(outputs, "logits") else outputs.last_hidden_state[:, 0]
        return out.max(-1).values

    got, _ = attention_x_gradient(build(kind), inputs, score, position=position)
    want = chefer_reference(kind, inputs, score, position)
    assert got.shape == want.shape
    assert (got - want).abs().max().item() <= 1e-5
    assert got.abs().sum() > 0
    # padding never receives attribution
    assert got[inputs["attention_mask"] == 0].abs().max().item() == 0 if (inputs["attention_mask"] == 0).any() else True


def test_bad_position():
    with pytest.raises(ValueError, match="position must be 'last', 'first' or 'mean', got 'middle'"):
        relevance_rows(torch.zeros(1, 2, 2), torch.ones(1, 2), "middle")


def test_relevance_op_opcheck_and_errors():
    a = torch.rand(2, 1, 3, 4, 4).softmax(-1)
    g = torch.randn(2, 1, 3, 4, 4)
    torch.library.opcheck(torch.ops.attnscope.attention_grad_relevance.default, (a, g))
    with pytest.raises(ValueError, match=r"grad must have the shape of attn \[2, 1, 3, 4, 4\]"):
        torch.ops.attnscope.attention_grad_relevance(a, g[:1])
    with pytest.raises(ValueError, match="attn must be square over query and key"):
        torch.ops.attnscope.attention_grad_relevance(a[..., :3], g[..., :3])


def test_through_attribute_matches_chefer_reference():
    import attnscope as ats
    from attnscope.attribution import Class

    inputs = batch("llama", "left")
    res = ats.attribute(build("llama"), inputs, method="attention_x_gradient", target=5)

    def score(outputs):
        return outputs.logits[torch.arange(2), -1, 5]

    want = chefer_reference("llama", inputs, score, "last")
    assert res.method == "attention_x_gradient" and res.scores.shape == (2, 10)
    assert (res.scores - want).abs().max().item() <= 1e-5
    assert Class  # the target vocabulary is importable next to it


def test_similarity_with_a_reference_text_on_minilm():
    """The reference text's forward runs before the capture (it used to run inside it, and the capture then found
    no attention gradient); the scores equal those with the reference given as its embedding."""
    from attribution_models import minilm

    import attnscope as ats
    from attnscope.attribution import Similarity

    model, tok = minilm()
    enc = tok(["a cat sat on the mat"], return_tensors="pt")
    by_text = ats.attribute(model, enc, method="attention_x_gradient", target=Similarity("a dog sat"), tokenizer=tok)
    ref = tok(["a dog sat"], return_tensors="pt")
    with torch.no_grad():
        hidden = model(**ref).last_hidden_state
    by_tensor = ats.attribute(model, enc, method="attention_x_gradient", target=Similarity(hidden.mean(1)[0]))
    torch.testing.assert_close(by_text.scores, by_tensor.scores, rtol=1e-5, atol=1e-7)
    assert bool((by_text.scores != 0).any())
