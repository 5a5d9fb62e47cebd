"""Progress and feedback (issue 21, item 3) and static exports (item 2): every method takes progress=, adaptive
integration warns when its budget ends before its tolerance, plot(head=) refuses heads the result does not hold,
and every result with a view saves its matplotlib figure as PNG and SVG."""

from __future__ import annotations

import warnings

import pytest
import torch
from attribution_models import tiny_gpt2, word_tokenizer

import attnscope as ats
from attnscope.attribution import catalog

TEXT = "the cat sat on the mat"


@pytest.fixture(scope="module")
def gpt2():
    return tiny_gpt2(), word_tokenizer(bert_style=False)


@pytest.mark.parametrize("name", [s.name for s in catalog.CATALOG if s.attribute])
def test_every_method_takes_progress(gpt2, name, capsys):
    model, tok = gpt2
    small = {k: v for k, v in (("n_steps", 4), ("n_samples", 16)) if catalog.get(name).option(k) is not None}
    quiet = ats.attribute(model, TEXT, method=name, tokenizer=tok, progress=False, seed=0, **small)
    assert capsys.readouterr().err == ""
    loud = ats.attribute(model, TEXT, method=name, tokenizer=tok, progress=True, seed=0, **small)
    assert "%" in capsys.readouterr().err  # progress=True: tqdm's bar on stderr, however short the work
    torch.testing.assert_close(quiet.scores, loud.scores)


def test_progress_true_draws_a_bar(gpt2, capsys):
    model, tok = gpt2
    ats.attribute(model, TEXT, method="integrated_gradients", tokenizer=tok, progress=True, n_steps=8)
    assert "%" in capsys.readouterr().err


def test_adaptive_integration_warns_when_its_budget_ends_first(gpt2):
    model, tok = gpt2
    with pytest.warns(RuntimeWarning, match=r"used its budget of n_steps=8 .* before reaching completeness_tol=1e-09"):
        res = ats.attribute(model, TEXT, method="integrated_gradients", tokenizer=tok, integration="adaptive",
                            n_steps=8, completeness_tol=1e-9)
    assert res.n_steps_used.tolist() == [8]  # the whole budget was spent
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        res = ats.attribute(model, TEXT, method="integrated_gradients", tokenizer=tok, integration="adaptive",
                            n_steps=512, completeness_tol=0.05)
    assert bool((res.delta.abs() <= 0.05 * (res.f_input - res.f_baseline).abs()).all())


def test_plot_refuses_heads_it_does_not_hold(gpt2):
    import matplotlib.pyplot as plt

    model, tok = gpt2
    res = ats.capture_attention(model, TEXT, tokenizer=tok)  # 4 heads
    with pytest.raises(ValueError, match=r"head 9 out of range: the result holds 4 heads \(0..3\)"):
        res.plot(head=9)
    with pytest.raises(ValueError, match=r"layer 5 was not captured: the result holds layers \[0, 1\]"):
        res.plot(layer=5)
    with pytest.raises(TypeError, match="head must be an int"):
        res.plot(head="1")
    some = ats.capture_attention(model, TEXT, tokenizer=tok, heads=[1, 3])
    fig = some.plot(head=3, layer=0)
    shown = fig.axes[0].images[0].get_array()
    assert torch.equal(torch.as_tensor(shown.data), some.weights[0, 0, 1].float())  # head 3, not the 2nd slot's index
    assert "head 3" in fig.axes[0].get_title()
    plt.close(fig)
    with pytest.raises(ValueError, match=r"head 0 was not captured: the result holds heads \[1, 3\]"):
        some.plot(head=0)
    mean = ats.capture_attention(model, TEXT, tokenizer=tok, reduce="mean")
    with pytest.raises(ValueError, match=r"one matrix \(mean\): head=0"):
        mean.plot(head=1)


def _results(gpt2):
    """One result of every class that has a view (cheap ones, on tiny models)."""
    model, tok = gpt2
    org, otok = ats.organisms.load("induction")
    attr = ats.attribute(model, TEXT, method="saliency", tokenizer=tok)
    return {
        "AttentionResult": ats.capture_attention(model, TEXT, tokenizer=tok),
        "AttributionResult": attr,
        "GenerationAttribution": ats.attribute_generation(org, otok, "t1 t5 t9 t1 t5", max_new_tokens=2, progress=False),
        "DatasetAttribution": ats.attribute_dataset(model, tok, [TEXT, "a dog ran"], progress=False),
        "HeadStats": ats.head_stats(org, otok, ["t1 t2 t1 t2"], progress=False),
        "LensResult": ats.logit_lens(org, "t1 t2 t1", tokenizer=otok),
        "DLAResult": ats.direct_logit_attribution(org, "t1 t2 t1", tokenizer=otok),
        "ActivationResult": ats.capture_activations(org, "t1 t2 t1", tokenizer=otok, sites=("resid_post",)),
        "NeuronStats": ats.neuron_stats(org, otok, ["t1 t2 t3 t1"], top_k=2, progress=False),
        "Weights": ats.weights(org),
        "TokenNeighbors": ats.embeddings(org, otok).neighbors("t1", k=3),
        "EmbeddingProjection": ats.embeddings(org, otok).project(["t1", "t2", "t3"]),
        "EvaluationResult": ats.evaluate(model, TEXT, attr, metrics=["comprehensiveness"], tokenizer=tok,
                                         progress=False),
        "PatchingResult": ats.activation_patching(org, "t1 t5 t9 t1 t5", "t1 t5 t9 t2 t5",
                                                  metric=("logit_diff", "t9", "t2"), tokenizer=otok),
    }


def test_every_result_with_a_view_exports_png_and_svg(gpt2, tmp_path):
    import matplotlib.pyplot as plt

    from attnscope import results

    results_with_views = {n for n in results.__all__ if hasattr(getattr(results, n), "view")}
    made = _results(gpt2)
    assert results_with_views - set(made) <= {"BenchmarkResult"}  # the benchmark's export: test_quality's run
    open_before = plt.get_fignums()
    for name, res in made.items():
        png = res.save_png(tmp_path / f"{name}.png")
        svg = res.save_svg(tmp_path / "svg" / f"{name}.svg")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert b"<svg" in svg.read_bytes()[:2000], name
    assert plt.get_fignums() == open_before  # every figure was closed
    res = made["AttentionResult"]
    with pytest.raises(ValueError, match="head 9 out of range"):
        res.save_png(tmp_path / "bad.png", head=9)  # the figure's arguments pass through
    assert not (tmp_path / "bad.png").exists()


@pytest.mark.parametrize("method", ["integrated_gradients", "occlusion"])
def test_progress_none_shows_a_bar_once_work_runs_long(gpt2, capsys, monkeypatch, method):
    from attnscope.attribution import chunking

    model, tok = gpt2
    kwargs = dict(method=method, tokenizer=tok, internal_batch_size=2)
    monkeypatch.setattr(chunking, "PROGRESS_DELAY_S", 3600.0)  # the call ends long before the delay: no bar
    ats.attribute(model, TEXT, **kwargs)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(chunking, "PROGRESS_DELAY_S", 0.0)  # as if the call had already run past the delay
    ats.attribute(model, TEXT, **kwargs)
    assert "%" in capsys.readouterr().err
