"""The views of activations, neurons and weights in headless Chromium."""

from __future__ import annotations

import random

import pytest
import torch

import attnscope as ats
from attnscope import organisms
from test_views import load, page_load_seconds


@pytest.fixture(scope="module")
def organism():
    return organisms.load("induction")


def full_stats(k: int = 20, context: int = 32, neurons: int = 3) -> ats.NeuronStats:
    """NeuronStats whose every context is a full window of 2 * context + 1 tokens."""
    g = torch.Generator().manual_seed(0)
    w = 2 * context + 1
    values = torch.sort(torch.rand(1, neurons, k, generator=g), dim=-1, descending=True).values
    acts = torch.randn(1, neurons, k, w, generator=g)
    acts[..., context] = values
    ids = torch.randint(0, 50, (1, neurons, k, w), generator=g)
    return ats.NeuronStats(layers=[0], site="mlp_hidden", top_values=values,
                           top_text=torch.arange(k).expand(1, neurons, k).clone(),
                           top_position=torch.full((1, neurons, k), context), context_ids=ids, context_acts=acts,
                           mean=torch.zeros(1, neurons, dtype=torch.float64), max=values[..., 0],
                           frequency=torch.zeros(1, neurons, dtype=torch.float64), n_texts=k, n_tokens=k * w,
                           top_k=k, context=context, vocab={i: f"tok{i}<b>" for i in range(50)})


def test_neuron_view_20_contexts_of_64_tokens_is_responsive(browser, tmp_path, screenshots):
    stats = full_stats()
    contexts = stats.contexts(0, 1)
    assert len(contexts) == 20 and all(len(c["tokens"]) == 65 for c in contexts)
    path = stats.view(0, 1).save_html(tmp_path / "neuron.html")
    assert load(browser, path) == []
    root = browser.find_element("css selector", ".attnscope-view")
    assert root.get_attribute("data-token-count") == str(20 * 65) and root.get_attribute("data-rendered") == "1"
    spans = browser.find_elements("css selector", ".ats-token")
    assert len(spans) == 20 * 65
    # hover text: the token and the neuron's activation on it; the top token carries the top value
    first = contexts[0]
    assert spans[first["centre"]].get_attribute("title") == f"{first['tokens'][32]}: {first['value']:.3f}"
    assert spans[first["centre"]].text == first["tokens"][32]  # markup in a token is text
    assert page_load_seconds(browser) < 2.0
    browser.save_screenshot(str(screenshots / "neuron.png"))


def test_neuron_view_of_real_statistics(browser, tmp_path, organism):
    model, tok = organism
    rng = random.Random(0)
    texts = [" ".join(f"t{rng.randrange(128)}" for _ in range(30)) for _ in range(12)]
    stats = ats.neuron_stats(model, tok, texts, top_k=5, context=4, layers=[1], progress=False)
    neuron = stats.top_neurons(k=1)[0][1]
    path = stats.view(1, neuron).save_html(tmp_path / "real.html")
    assert load(browser, path) == []
    labels = [e.text for e in browser.find_elements("css selector", ".ats-cell-label")]
    assert len(labels) == 5 and labels[0].startswith(f"#1 text {int(stats.top_text[0, neuron, 0])}")


@pytest.mark.parametrize("kind", ["norms", "similarity"])
def test_residual_views(browser, tmp_path, organism, kind):
    model, tok = organism
    res = ats.capture_activations(model, "t1 t2 t3 t4 t1 t2 t3", tokenizer=tok, sites="resid_post")
    path = res.view(kind).save_html(tmp_path / f"{kind}.html")
    assert load(browser, path) == []
    root = browser.find_element("css selector", ".attnscope-view")
    assert root.get_attribute("data-token-count") == "8"
    assert "<bos>" in res.view("norms").html or "\\u003cbos\\u003e" in res.view("norms").html


@pytest.mark.parametrize("kind", ["norms", "spectrum", "circuit"])
def test_weight_views(browser, tmp_path, organism, kind):
    model, tok = organism
    w = ats.weights(model)
    ids = list(range(3, 23))
    view = w.ov(1, 0).view(ids, tok) if kind == "circuit" else w.view(kind)
    path = view.save_html(tmp_path / f"{kind}.html")
    assert load(browser, path) == []
    root = browser.find_element("css selector", ".attnscope-view")
    assert root.get_attribute("data-rendered") == "1"
    if kind == "circuit":
        assert root.get_attribute("data-token-count") == "20"
        scores = w.ov(1, 0).token_scores(ids, ids)
        assert bool((scores.argmax(-1) == torch.arange(20)).float().mean() > 0.9)  # the heatmap shows the diagonal
