"""gradient_norm, the method added by one file and one catalog entry (docs/architecture.md, "How to add a method"):
``||dF/dx_t||_2`` against a plain autograd computation on the word embeddings."""

from __future__ import annotations

import torch
from attribution_models import tiny_gpt2, tiny_llama, word_tokenizer

import attnscope as ats


def _reference(model, enc):
    emb = model.get_input_embeddings()(enc["input_ids"]).detach().requires_grad_(True)
    logits = model(inputs_embeds=emb, attention_mask=enc["attention_mask"]).logits
    last = enc["attention_mask"].sum(1) - 1  # right padding
    rows = torch.arange(logits.shape[0])
    with torch.no_grad():
        token = model(**enc).logits[rows, last].argmax(-1)  # the next-token target: the model's own prediction
    logits[rows, last, token].sum().backward()
    return emb.grad.norm(dim=-1) * enc["attention_mask"]


def test_gradient_norm_equals_autograd():
    tok = word_tokenizer(bert_style=False)
    enc = tok(["the cat sat on the mat", "a dog ran"], return_tensors="pt", padding=True)
    model = tiny_gpt2()
    res = ats.attribute(model, enc, method="gradient_norm", tokenizer=tok)
    assert res.raw.shape == (*enc["input_ids"].shape, 1)
    torch.testing.assert_close(res.scores, _reference(model, enc), rtol=1e-5, atol=1e-7)
    saliency = ats.attribute(model, enc, method="saliency", tokenizer=tok)
    assert not torch.allclose(res.scores, saliency.scores)  # L2, not the L1 sum


def test_gradient_norm_in_generation_matches_the_per_token_loop():
    model, tok = tiny_llama(), word_tokenizer(bert_style=False)
    gen = ats.attribute_generation(model, tok, "the cat sat", continuation="on the mat", method="gradient_norm",
                                   target="logit")
    ids = tok("the cat sat on the mat")["input_ids"]
    p = len(tok("the cat sat")["input_ids"])
    for t in range(gen.matrix.shape[0]):
        prefix = torch.tensor([ids[: p + t]])
        res = ats.attribute(model, prefix, method="gradient_norm", target=ids[p + t])
        torch.testing.assert_close(gen.matrix[t, : p + t], res.scores[0], rtol=1e-5, atol=1e-6)
