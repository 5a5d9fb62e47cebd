"""PatchingResult's view in headless Chromium (diverging heatmap, hover with labels and value), plot, to_pandas,
save/load."""

from __future__ import annotations

import math

import pytest
import torch
from selenium.webdriver.common.action_chains import ActionChains

import attnscope as ats
from internal_models import build
from test_views import EXTERNAL, PAYLOADS, load


@pytest.fixture(scope="module")
def results():
    model = build("gpt2")
    g = torch.Generator().manual_seed(0)
    clean = torch.randint(3, 90, (2, 10), generator=g)
    corrupted = clean.clone()
    corrupted[:, 3] = 4
    kwargs = dict(metric=("logit_diff", 10, 20))
    return (ats.activation_patching(model, clean, corrupted, sites=("resid_pre", "attn_out"), **kwargs),
            ats.activation_patching(model, clean, corrupted, sites=("head_out",), by="head", **kwargs))


def test_position_view_renders_with_token_labels_and_hover(browser, tmp_path, screenshots, results):
    by_pos, _ = results
    view = by_pos.view("attn_out", example=1)
    assert view.data["diverging"] is True
    assert view.data["cols"][3] == f"3 {by_pos.tokens[1][3]}" and view.data["rows"] == ["0", "1"]
    assert view.data["values"][1 * 10 + 3] == pytest.approx(float(by_pos.normalized["attn_out"][1, 1, 3]), abs=1e-6)
    for pattern in EXTERNAL:
        assert not pattern.search(view.html), pattern.pattern
    path = view.save_html(tmp_path / "patching.html")
    assert load(browser, path) == []
    canvas = browser.find_element("css selector", ".ats-matrix canvas")
    ActionChains(browser).move_to_element(canvas).perform()
    tip = browser.find_element("css selector", ".ats-tip").text
    assert "layer" in tip and "position" in tip
    browser.save_screenshot(str(screenshots / "patching.png"))


def test_head_view_and_payloads_stay_text(browser, tmp_path, results):
    _, by_head = results
    by_head.tokens[0] = [PAYLOADS[0]] * len(by_head.tokens[0])  # labels are not used by head grids, metric is
    by_head.metric = PAYLOADS[0]
    view = by_head.view()
    assert view.data["cols"] == ["0", "1", "2", "3"] and view.data["col_title"] == "head"
    path = view.save_html(tmp_path / "heads.html")
    assert load(browser, path) == []
    assert browser.execute_script("return typeof window.pwned") == "undefined"
    assert browser.find_elements("css selector", "img") == []


def test_to_pandas_plot_save_and_load(tmp_path, results):
    by_pos, by_head = results
    df = by_pos.to_pandas()
    assert len(df) == 2 * 2 * 2 * 10  # sites x examples x layers x positions
    row = df[(df.site == "resid_pre") & (df.example == 1) & (df.layer == "1") & (df.position == f"3 {by_pos.tokens[1][3]}")]
    assert float(row.raw.iloc[0]) == pytest.approx(float(by_pos.raw["resid_pre"][1, 1, 3]))
    fig = by_pos.plot("resid_pre", example=0)
    assert len(fig.axes) == 2
    for res in (by_pos, by_head):
        back = ats.load(res.save(tmp_path / res.by))
        assert isinstance(back, ats.PatchingResult)
        for site in res.sites:
            assert torch.equal(back.raw[site], res.raw[site])
            assert torch.allclose(back.normalized[site], res.normalized[site], equal_nan=True)
        assert back.rows == res.rows and back.tokens == res.tokens and back.undefined == res.undefined


def test_top_and_compare(results):
    by_pos, _ = results
    top = by_pos.top(3, "resid_pre")
    assert len(top) == 3 and top[0][2] >= top[1][2] >= top[2][2]
    same = by_pos.compare(by_pos)
    assert same.correlation == pytest.approx(1.0) and same.max_abs_error == 0.0
    assert not math.isnan(same.correlation)
    with pytest.raises(ValueError, match="the grids differ"):
        by_pos.compare(results[1])
    with pytest.raises(ValueError, match="site 'mlp_out' is not in this result"):
        by_pos.values("mlp_out")
    with pytest.raises(ValueError, match="example 2 out of range"):
        by_pos.values(example=2)
