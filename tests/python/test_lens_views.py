"""The logit-lens and DLA views in headless Chromium: they render, hover shows the top-k, payloads stay text."""

from __future__ import annotations

import re

import pytest
import torch
from selenium.webdriver.common.action_chains import ActionChains

import attnscope as ats
from attnscope.viz import dla_view, lens_view

from lens_models import batch, build
from test_views import EXTERNAL, PAYLOADS, load


@pytest.fixture(scope="module")
def results():
    model = build("gpt2")
    return ats.logit_lens(model, batch(), top_k=3, target=ats.attribution.targets.Contrast(4, 5)), \
        ats.direct_logit_attribution(model, batch(), target=4)


def test_views_have_no_external_references(results):
    lens, dla = results
    for view in (lens.view(), dla.view()):
        for pattern in EXTERNAL:
            assert not pattern.search(view.html), pattern.pattern


def test_lens_grid_renders_and_hover_shows_top_k(browser, tmp_path, screenshots, results):
    lens, _ = results
    path = lens.save_html(tmp_path / "lens.html", example=1)  # left-padded: 6 real positions
    assert load(browser, path) == []
    cells = browser.find_elements("css selector", ".ats-lens-cell")
    assert len(cells) == 3 * 6
    top_layer_last = [c for c in cells if c.get_attribute("data-layer") == "2" and c.get_attribute("data-pos") == "5"]
    assert top_layer_last[0].text == lens.token(lens.topk_ids[2, 1, 8, 0])
    ActionChains(browser).move_to_element(top_layer_last[0]).perform()
    tip = browser.find_element("css selector", ".ats-tip").text
    assert f"1. {lens.token(lens.topk_ids[2, 1, 8, 0])}" in tip and "KL to final" in tip and "rank" in tip
    chart = browser.find_element("css selector", ".ats-lens-chart")
    assert chart.get_attribute("data-selected") == "5"
    browser.find_elements("css selector", ".ats-lens-pos")[2].click()
    assert chart.get_attribute("data-selected") == "2"
    browser.save_screenshot(str(screenshots / "lens.png"))


def test_dla_view_renders(browser, tmp_path, screenshots, results):
    _, dla = results
    path = dla.save_html(tmp_path / "dla.html")
    assert load(browser, path) == []
    canvas = browser.find_element("css selector", ".ats-dla-heads canvas")
    ActionChains(browser).move_to_element(canvas).perform()
    assert re.match(r"layer L[0-2]\nhead [0-3]\n-?[0-9.e-]+$", browser.find_element("css selector", ".ats-tip").text)
    labels = [e.text for e in browser.find_elements("css selector", ".ats-bar-label")]
    assert labels[0] == "embed" and "L2.mlp" in labels and not any(lab.startswith("L0H") for lab in labels)
    browser.save_screenshot(str(screenshots / "dla.png"))


def test_payloads_render_as_text(browser, tmp_path):
    cell = {"top": [[PAYLOADS[0], 0.9], [PAYLOADS[1], 0.1]], "entropy": 0.3, "kl": 0.0, "target": [0.5], "rank": [1]}
    view = lens_view(layers=["0"], positions=[PAYLOADS[2]], cells=[[cell]], targets=[PAYLOADS[3]])
    assert load(browser, view.save_html(tmp_path / "lens.html")) == []
    assert browser.execute_script("return typeof window.pwned") == "undefined"
    assert browser.find_elements("css selector", "img") == []
    assert PAYLOADS[0] in browser.find_element("css selector", ".ats-lens-cell").text
    view = dla_view(heads=[[1.0, -1.0]], layers=["0"], bars=[(PAYLOADS[0], 0.5)], logit=1.0, delta=0.0)
    assert load(browser, view.save_html(tmp_path / "dla.html")) == []
    assert browser.execute_script("return typeof window.pwned") == "undefined"
    assert browser.find_element("css selector", ".ats-bar-label").text == PAYLOADS[0]


def test_bad_view_arguments():
    with pytest.raises(ValueError, match=r"cells must be \[1 layers\]\[2 positions\]"):
        lens_view(layers=["0"], positions=["a", "b"], cells=[[]], targets=[])
    with pytest.raises(ValueError, match="heads must be"):
        dla_view(heads=[[1.0]], layers=["0", "1"], bars=[], logit=0.0, delta=0.0)
    lens = ats.logit_lens(build("llama"), batch(), top_k=2)
    with pytest.raises(ValueError, match=r"example 2 out of range: the result holds 2 examples"):
        lens.view(example=2)
    with pytest.raises(ValueError, match="layer 7 is not in this result"):
        lens.top_tokens(7, 0)
    torch.testing.assert_close(lens.topk_probs.sum(-1) <= 1.0 + 1e-6, torch.ones_like(lens.entropy, dtype=torch.bool))
