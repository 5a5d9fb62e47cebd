"""Views: self-contained HTML, escaped, rendered in a real headless Chromium."""

from __future__ import annotations

import re

import pytest
import torch

import attnscope as ats
from attnscope.viz import embed_json, matrix_view, token_view

PAYLOADS = ["<script>window.pwned=1</script>", "</script>", '"><img src=x onerror="window.pwned=1">', "a\u2028b\u2029c"]
EXTERNAL = [re.compile(p) for p in (r"http:", r"https:", r"(src|href)\s*=\s*[\"']?//", r"require\(")]


def attention_result(tokens, layers=2, heads=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = len(tokens)
    w = torch.rand(layers, 1, heads, n, n, generator=g).softmax(-1)
    return ats.AttentionResult(weights=w, layers=list(range(layers)), tokens=[list(tokens)],
                               attention_mask=torch.ones(1, n, dtype=torch.long))


def all_views(tokens):
    res = attention_result(tokens)
    scores = torch.linspace(-1, 1, len(tokens)).tolist()
    return {
        "head": res.view("head"),
        "model": res.view("model"),
        "tokens": token_view([{"tokens": tokens, "scores": scores, "words": tokens, "word_scores": scores}]),
        "matrix": matrix_view(torch.randn(3, len(tokens)), ["g0", "g1", PAYLOADS[0]], tokens, diverging=True),
    }


def load(browser, path):
    browser.get(path.as_uri())
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    return errors


def page_load_seconds(browser) -> float:
    """Navigation start to the end of the load event (parsing, script execution, rendering), in the page."""
    return browser.execute_script(
        "var n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime;") / 1000.0


def test_embed_json_cannot_break_out():
    text = embed_json({"t": PAYLOADS})
    assert "</script" not in text and "<" not in text and "\u2028" not in text and "\u2029" not in text
    import json

    assert json.loads(text)["t"] == PAYLOADS


@pytest.mark.parametrize("kind", ["head", "model", "tokens", "matrix"])
def test_no_external_references(kind):
    html = all_views(["a", "b", "c"])[kind].html
    for pattern in EXTERNAL:
        assert not pattern.search(html), f"{kind} view references {pattern.pattern}"


@pytest.mark.parametrize("kind", ["head", "model", "tokens", "matrix"])
def test_views_load_without_console_errors(browser, tmp_path, screenshots, kind):
    tokens = ["The", "cat", "sat", "on", "the", "mat", "."]
    view = all_views(tokens)[kind]
    path = view.save_html(tmp_path / f"{kind}.html")
    assert load(browser, path) == []
    root = browser.find_element("css selector", ".attnscope-view")
    assert root.get_attribute("data-token-count") == str(len(tokens))
    assert root.get_attribute("data-rendered") == "1"
    browser.save_screenshot(str(screenshots / f"{kind}.png"))


@pytest.mark.parametrize("kind", ["head", "model", "tokens", "matrix"])
def test_payloads_render_as_text(browser, tmp_path, kind):
    tokens = ["ok", *PAYLOADS, "end"]
    path = all_views(tokens)[kind].save_html(tmp_path / f"{kind}.html")
    assert load(browser, path) == []
    assert browser.execute_script("return typeof window.pwned") == "undefined"
    assert browser.find_elements("css selector", "img") == []
    if kind in ("tokens", "head"):
        text = browser.find_element("css selector", ".attnscope-view").text
        assert "<script>window.pwned=1</script>" in text


def test_attribution_colours(browser, tmp_path):
    view = token_view([{"tokens": ["good", "zero", "bad"], "scores": [2.0, 0.0, -1.5]}])
    path = view.save_html(tmp_path / "colours.html")
    assert load(browser, path) == []
    spans = browser.find_elements("css selector", ".ats-token")

    def rgb(span):
        return [int(v) for v in re.findall(r"\d+", span.value_of_css_property("background-color"))[:3]]

    pos, zero, neg = (rgb(s) for s in spans)
    assert pos[0] > pos[2] + 100  # red-dominant
    assert neg[2] > neg[0] + 60  # blue-dominant
    assert zero == [255, 255, 255]
    assert spans[0].get_attribute("title") == "good: 2.000"


def test_long_attribution_view_renders_fast(browser, tmp_path):
    n = 2000
    view = token_view([{"tokens": [f"tok{i}" for i in range(n)], "scores": torch.randn(n).tolist()}])
    path = view.save_html(tmp_path / "long.html")
    assert load(browser, path) == []
    elapsed = page_load_seconds(browser)
    assert len(browser.find_elements("css selector", ".ats-token")) == n
    assert elapsed < 1.0, f"2,000-token attribution view took {elapsed:.2f} s"


def test_long_head_view_renders_fast(browser, tmp_path):
    n = 1000
    g = torch.Generator().manual_seed(0)
    w = (torch.randn(1, 1, 2, n, n, generator=g) * 3).softmax(-1)
    res = ats.AttentionResult(weights=w, layers=[0], tokens=[[f"t{i}" for i in range(n)]])
    path = res.save_html(tmp_path / "head_long.html")
    assert load(browser, path) == []
    elapsed = page_load_seconds(browser)
    assert browser.find_element("css selector", ".attnscope-view").get_attribute("data-token-count") == str(n)
    assert elapsed < 2.0, f"1,000-token head view took {elapsed:.2f} s"


def test_attention_views_from_a_real_capture(browser, tmp_path, minilm_path):
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm_path)
    model = AutoModel.from_pretrained(minilm_path).eval()
    enc = tok(["A man is playing a guitar.", "Hi"], padding=True, return_tensors="pt")
    res = ats.capture_attention(model, enc, tokenizer=tok)
    for kind in ("head", "model"):
        path = res.save_html(tmp_path / f"{kind}.html", kind=kind, batch=1)
        assert load(browser, path) == []
        # The padded second example shows only its 3 real tokens.
        assert browser.find_element("css selector", ".attnscope-view").get_attribute("data-token-count") == "3"
    fig = res.plot(layer=5, head=2)
    fig.savefig(tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 1000


def test_bad_view_arguments():
    res = attention_result(["a", "b"])
    with pytest.raises(ValueError, match="unknown view 'grid'"):
        res.view("grid")
    with pytest.raises(ValueError, match=r"batch 3 out of range: the result has 1 examples \(0..0\)"):
        res.view("head", batch=3)
    with pytest.raises(ValueError, match="tokens and scores differ in length"):
        token_view([{"tokens": ["a"], "scores": [1.0, 2.0]}])


def test_real_attribution_and_head_stats_views(browser, tmp_path, screenshots):
    load_page = load
    from attnscope.organisms import load as load_organism

    model, tok = load_organism("induction")
    enc = tok(["t1 t5 t9 t2 t1 t5 t9", "t3 t4"], padding=True, return_tensors="pt")
    res = ats.attribute(model, enc, method="input_x_gradient", tokenizer=tok)
    path = res.save_html(tmp_path / "attribution.html")
    assert load_page(browser, path) == []
    n_tokens = int(enc["attention_mask"].sum())
    assert browser.find_element("css selector", ".attnscope-view").get_attribute("data-token-count") == str(n_tokens)
    browser.save_screenshot(str(screenshots / "attribution.png"))
    stats = ats.head_stats(model, tok, ["t1 t2 t3 t1 t2 t3", "t4 t5 t4 t5"], progress=False)
    path = stats.save_html(tmp_path / "heads.html", "prev_token")
    assert load_page(browser, path) == []
    browser.save_screenshot(str(screenshots / "head_stats.png"))
    fig = res.plot()
    fig.savefig(tmp_path / "bars.png")


def test_real_generation_view(browser, tmp_path, screenshots):
    """GenerationAttribution: the generated × source heatmap loads cleanly, counts its source tokens, and hovering
    a cell names both tokens and the value."""
    from attnscope.organisms import load as load_organism

    model, tok = load_organism("induction")
    res = ats.attribute_generation(model, tok, "t1 t5 t9 t2 t7 t1 t5", max_new_tokens=4, method="input_x_gradient")
    path = res.save_html(tmp_path / "generation.html")
    assert load(browser, path) == []
    root = browser.find_element("css selector", ".attnscope-view")
    n_sources = res.prompt_len + len(res.generated_tokens)
    assert root.get_attribute("data-token-count") == str(n_sources)
    tip = browser.execute_script("""
        var c = document.querySelector('.ats-matrix canvas'), r = c.getBoundingClientRect();
        c.dispatchEvent(new MouseEvent('mousemove', {clientX: r.right - 2, clientY: r.bottom - 2, bubbles: true}));
        return document.querySelector('.ats-tip').textContent;""")
    last_row = f"{len(res.generated_tokens) - 1}: {res.generated_tokens[-1]}"
    last_col = f"{n_sources - 1}: {res.tokens[-1]}"
    assert last_row in tip and last_col in tip, tip
    assert tip.splitlines()[-1] == "0.000"  # right of the diagonal: the last token predicts nothing here
    browser.save_screenshot(str(screenshots / "generation.png"))
    fig = res.plot()
    fig.savefig(tmp_path / "generation.png")
