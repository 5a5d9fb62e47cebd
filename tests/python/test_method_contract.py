"""The contract every method of the catalog keeps, parametrised over ``ats.list_methods()``: a new method gets these
tests by adding its catalog entry. Chunking independence, padding gets nothing, the model's state restored after an
exception, seed reproducibility, unknown options refused, progress on and off; the same for generation."""

from __future__ import annotations

import pytest
import torch
from attribution_models import tiny_gpt2, tiny_llama, word_tokenizer

import attnscope as ats
from attnscope.attribution import catalog

ATTRIBUTE = catalog.names()
GENERATION = catalog.names(context="generation")
SEEDED = ("smoothgrad", "gradient_shap", "lime", "kernel_shap", "shapley_sampling")


@pytest.fixture(scope="module")
def lm():
    tok = word_tokenizer(bert_style=False)
    enc = tok(["the cat sat on the mat", "a dog ran"], return_tensors="pt", padding=True)
    return tiny_gpt2(), tok, enc


def _run(lm, method, **kw):
    model, tok, enc = lm
    kw.setdefault("progress", False)
    if method in SEEDED:
        kw.setdefault("seed", 0)
    spec = catalog.get(method)
    for option, small in (("n_steps", 4), ("n_samples", 12)):  # small but real runs keep the suite fast
        if spec.option(option) is not None and option not in kw:
            kw[option] = small
    return ats.attribute(model, enc, method=method, tokenizer=tok, **kw)


@pytest.mark.parametrize("method", ATTRIBUTE)
def test_chunking_does_not_change_scores(lm, method):
    one = _run(lm, method, internal_batch_size=1)
    many = _run(lm, method, internal_batch_size=64)
    torch.testing.assert_close(one.scores, many.scores, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ATTRIBUTE)
def test_padding_gets_nothing(lm, method):
    res = _run(lm, method)
    pad = res.attention_mask == 0
    assert bool(pad.any())
    assert bool((res.scores[pad] == 0).all()), res.scores
    assert bool((res.scores[~pad] != 0).any())


@pytest.mark.parametrize("method", ATTRIBUTE)
def test_model_state_restored_after_an_exception(lm, method):
    model, tok, enc = lm
    model.train()
    before = {n: p.requires_grad for n, p in model.named_parameters()}
    impl = model.config._attn_implementation

    def failing(outputs):
        raise RuntimeError("target failed on purpose")

    try:
        with pytest.raises(RuntimeError, match="on purpose"):
            _run(lm, method, target=failing)
        assert all(m.training for m in model.modules())
        assert {n: p.requires_grad for n, p in model.named_parameters()} == before
        assert model.config._attn_implementation == impl
        for m in model.modules():
            assert not m._forward_hooks and not m._forward_pre_hooks, m
    finally:
        model.eval()


@pytest.mark.parametrize("method", [m for m in ATTRIBUTE if m in SEEDED])
def test_same_seed_same_scores(lm, method):
    a, b = _run(lm, method, seed=7), _run(lm, method, seed=7)
    assert torch.equal(a.scores, b.scores)
    c = _run(lm, method, seed=8)
    assert not torch.equal(a.scores, c.scores)


@pytest.mark.parametrize("method", ATTRIBUTE)
def test_unknown_options_are_refused(lm, method):
    with pytest.raises(TypeError, match=f"unexpected keyword argument 'n_stepz'; method='{method}' takes"):
        _run(lm, method, n_stepz=3)
    spec = catalog.get(method)
    foreign = next(name for name in catalog.all_option_names() if spec.option(name) is None)
    with pytest.raises(ValueError, match=f"method='{method}' takes no {foreign}="):
        _run(lm, method, **{foreign: 1})


@pytest.mark.parametrize("method", ATTRIBUTE)
def test_progress_on_and_off(lm, method, capsys):
    _run(lm, method, progress=True)
    assert "attnscope" in capsys.readouterr().err
    _run(lm, method, progress=False)
    assert capsys.readouterr().err == ""


# --- generation ------------------------------------------------------------------------------------------------
PROMPT, CONTINUATION = "the cat sat on", "the mat and"


@pytest.fixture(scope="module")
def causal():
    return tiny_llama(), word_tokenizer(bert_style=False)


def _generate(causal, method, **kw):
    model, tok = causal
    if any(o.name == "n_steps" for o in catalog.get(method, "generation").generation_options):
        kw.setdefault("n_steps", 4)
    return ats.attribute_generation(model, tok, PROMPT, continuation=CONTINUATION, method=method, **kw)


@pytest.mark.parametrize("method", GENERATION)
def test_generation_chunking_does_not_change_scores(causal, method):
    runs = [_generate(causal, method, batch_size=b, progress=False) for b in (1, 64)]
    torch.testing.assert_close(runs[0].matrix, runs[1].matrix, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", GENERATION)
def test_generation_refuses_unknown_options(causal, method):
    with pytest.raises(TypeError, match="unexpected keyword argument 'n_stepz'"):
        _generate(causal, method, n_stepz=2)
    takers = catalog.all_option_names("generation")
    foreign = next((n for n in takers if method not in takers[n]), None)
    if foreign is not None:
        with pytest.raises(ValueError, match=f"method='{method}' takes no {foreign}="):
            _generate(causal, method, **{foreign: 1})


@pytest.mark.parametrize("method", GENERATION)
def test_generation_progress_on_and_off(causal, method, capsys):
    _generate(causal, method, progress=True, batch_size=1)
    assert "attnscope" in capsys.readouterr().err
    _generate(causal, method, progress=False)
    assert capsys.readouterr().err == ""
