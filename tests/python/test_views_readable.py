"""Views a user can read (issue 21, item 2): 1,000-token model, head and generation views in headless Chromium
(no console errors; font size and row height measured), readable subword pieces, targets by token text and the
predicted label with its probability in attribution views."""

from __future__ import annotations

import pytest
import torch

import attnscope as ats
from attnscope.viz.readable import readable_tokens

N = 1000


def load(browser, path):
    browser.get(path.as_uri())
    return [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def long_attention(layers=1, heads=4, n=N):
    g = torch.Generator().manual_seed(0)
    w = (torch.randn(layers, 1, heads, n, n, generator=g) * 2).softmax(-1)
    return ats.AttentionResult(weights=w, layers=list(range(layers)), tokens=[[f"\u0120w{i}" for i in range(n)]])


def test_readable_pieces():
    assert readable_tokens(["The", "\u0120cat", "\u010a", "\u0120caf\u00c3\u00a9"]) == ["The", " cat", "\u21b5", " caf\u00e9"]
    assert readable_tokens(["<|endoftext|>", "\u0120a"]) == ["<|endoftext|>", " a"]
    assert readable_tokens(["\u2581The", "\u2581cat", "<0x0A>", "s"]) == [" The", " cat", "\u21b5", "s"]
    assert readable_tokens(["[CLS]", "play", "##ing", "\t"]) == ["[CLS]", "play", "##ing", "\u21e5"]
    # words joined from byte-level pieces are decoded by the pieces' scheme
    assert readable_tokens(["caf\u00c3\u00a9"], like=["\u0120caf", "\u00c3\u00a9"]) == ["caf\u00e9"]


def test_model_view_colour_scale_adapts_and_says_so(browser, tmp_path):
    res = long_attention()
    view = res.view("model")
    assert load(browser, view.save_html(tmp_path / "model.html")) == []
    note = browser.find_element("css selector", ".ats-scale-note").text
    assert f"{N} tokens pooled to 48\u00d748 cells" in note and "largest value shown" in note
    scale = float(note.split("blue ")[1].split(" ")[0])
    assert scale == pytest.approx(view.data["scale"], rel=5e-3) and scale < 0.05  # pooled means are small
    # The strongest cell is drawn in full colour, not near-white as on a fixed 0..1 scale.
    darkest = browser.execute_script("""
        var c = document.querySelector('.ats-grid canvas'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        var m = 255; for (var i = 0; i < d.length; i += 4) m = Math.min(m, d[i]); return m;""")
    assert darkest < 40


def test_model_view_top(browser, tmp_path):
    res = long_attention(n=20)
    view = res.view("model", top=2)
    cells = torch.tensor(view.data["cells"][0][0]).view(20, 20)
    assert ((cells > 0).sum(-1) == 2).all()
    assert torch.equal(cells.topk(2, -1).indices.sort(-1).values, res.weights[0, 0, 0].topk(2, -1).indices.sort(-1).values)
    with pytest.raises(ValueError, match="top must be a positive int"):
        res.view("model", top=0)
    with pytest.raises(TypeError, match=r"view\('model'\) takes batch=, top= but got min_weight="):
        res.view("model", min_weight=0.1)
    assert load(browser, view.save_html(tmp_path / "top.html")) == []


def test_head_view_at_1000_tokens_is_legible_and_responsive(browser, tmp_path):
    res = long_attention(heads=4)
    assert load(browser, res.save_html(tmp_path / "head.html")) == []
    rows = browser.find_elements("css selector", ".ats-col div")
    assert len(rows) == 2 * N  # queries and keys
    assert browser.execute_script("return arguments[0].textContent", rows[1]) == " w1"
    font = float(rows[1].value_of_css_property("font-size").rstrip("px"))
    height = browser.execute_script("return arguments[0].getBoundingClientRect().height", rows[1])
    assert font >= 11 and height >= 14 and height >= font
    # All heads on, hovering a query redraws synchronously: well under a frame budget of interaction.
    ms = browser.execute_script("""
        document.querySelectorAll('.ats-controls input[type=checkbox]').forEach(function (c) { if (!c.checked) c.click(); });
        var q = document.querySelector('.ats-col div[data-q="500"]'), t = performance.now();
        for (var k = 0; k < 10; k++) q.dispatchEvent(new MouseEvent('mouseover', {bubbles: true}));
        return (performance.now() - t) / 10;""")
    assert ms < 50, f"a hover redraw took {ms:.1f} ms"


def long_generation(prompt=N, generated=20):
    g = torch.Generator().manual_seed(0)
    m = torch.rand(generated, prompt + generated, generator=g)
    for t in range(generated):
        m[t, prompt + t:] = 0
    return ats.GenerationAttribution(
        matrix=m, prompt_ids=torch.arange(prompt), generated_ids=torch.arange(generated),
        prompt_tokens=[f"\u0120p{i}" for i in range(prompt)], generated_tokens=[f"\u0120g{t}" for t in range(generated)],
        step_scores=torch.rand(generated, generator=g), method="attention", target="prob")


def test_generation_view_separates_prompt_and_generated(browser, tmp_path):
    res = long_generation()
    assert load(browser, res.save_html(tmp_path / "gen.html")) == []
    names = browser.find_elements("css selector", ".ats-section-name")
    assert [n.text for n in names] == ["prompt", "generated"]
    canvas = browser.find_element("css selector", ".ats-matrix canvas")
    cell = int(canvas.get_attribute("data-cell-px"))
    left = [browser.execute_script("return arguments[0].offsetLeft", n) for n in names]
    assert left[1] - left[0] == N * cell  # the rule sits between the last prompt and the first generated column
    assert float(names[0].value_of_css_property("font-size").rstrip("px")) >= 11
    # Labels: 11px text; every generated row labelled (rows 14px+), columns thinned so labels never overlap.
    assert int(canvas.get_attribute("data-font-px")) >= 11
    assert int(canvas.get_attribute("data-row-px")) >= 14 and canvas.get_attribute("data-row-label-step") == "1"
    assert int(canvas.get_attribute("data-label-step")) * cell >= 12
    assert res.view().data["cols"][:2] == ["0:  p0", "1:  p1"]  # 'Ġp0' shown as ' p0'
    seq2seq = long_generation(prompt=5, generated=3)
    seq2seq.prefix_tokens, seq2seq.prefix_ids = ["<pad>"], torch.tensor([0])
    seq2seq.matrix = torch.nn.functional.pad(seq2seq.matrix, (0, 1))
    assert seq2seq.view().data["sections"] == [[0, "source"], [5, "prefix"], [6, "generated"]]


def test_attribution_view_names_target_and_prediction(browser, tmp_path):
    res = ats.AttributionResult(
        scores=torch.tensor([[0.2, 1.5, -0.7, 0.1]]), raw=torch.zeros(1, 4, 1),
        tokens=[["[CLS]", "play", "##ing", "[SEP]"]], input_ids=torch.tensor([[2, 7, 8, 3]]),
        attention_mask=torch.ones(1, 4, dtype=torch.long), method="saliency", target="Class(1)",
        target_labels=["class 1 (POSITIVE)"], predicted=["class 0 (NEGATIVE)"], predicted_id=torch.tensor([0]),
        predicted_prob=torch.tensor([0.875]))
    assert load(browser, res.save_html(tmp_path / "attr.html")) == []
    label = browser.find_element("css selector", ".ats-example .ats-cell-label").text
    assert "target: class 1 (POSITIVE)" in label and "predicted: class 0 (NEGATIVE) (p = 0.875)" in label
    assert "attribution sum 1.1" in label
    browser.find_element("css selector", "input[value=word]").click()
    words = [s.text for s in browser.find_elements("css selector", ".ats-token")]
    assert words == ["[CLS]", "playing", "[SEP]"]
    font = float(browser.find_element("css selector", ".ats-token").value_of_css_property("font-size").rstrip("px"))
    assert font >= 12


def test_real_attribution_shows_token_text(tmp_path_factory):
    from user_models import load as load_model
    from user_models import saved

    model, tok = load_model(saved("gpt2", str(tmp_path_factory.mktemp("m"))))
    res = ats.attribute(model, ["The cat sat on the mat."], method="saliency", tokenizer=tok)
    with torch.no_grad():
        logits = model(**tok(["The cat sat on the mat."], return_tensors="pt")).logits[0, -1]
    best = int(logits.argmax())
    assert res.predicted_id.tolist() == [best]
    assert float(res.predicted_prob[0]) == pytest.approx(float(logits.softmax(-1)[best]), rel=1e-5)
    assert res.predicted == [repr(tok.decode([best]))]
    assert res.target_labels == [f"next token {tok.decode([best])!r}"]
    folder = tmp_path_factory.mktemp("saved")
    res.save(folder)  # the labels are part of the saved result
    back = ats.load(folder)
    assert (back.predicted, back.target_labels) == (res.predicted, res.target_labels)
    assert torch.equal(back.predicted_prob, res.predicted_prob)
    shown = res.view().data["examples"][0]
    assert shown["token"]["tokens"][:3] == ["The", " cat", " sat"]
    assert "target: next token" in shown["label"] and "predicted: " in shown["label"]


def test_lens_and_neighbour_views_show_token_text():
    from attnscope.viz import lens_view

    cell = {"top": [["\u0120mat", 0.5]], "entropy": 1.0, "kl": 0.1, "target": [0.2], "rank": [3]}
    view = lens_view(layers=["0"], positions=["The", "\u0120cat"], cells=[[cell, cell]], targets=["\u0120sat"])
    assert view.data["positions"] == ["The", " cat"] and view.data["targets"] == [" sat"]
    assert view.data["cells"][0][1]["top"][0][0] == " mat"
    near = ats.TokenNeighbors(queries=["cat"], query_ids=None, ids=torch.tensor([[5, 6]]), tokens=[["\u0120dog", "\u0120cats"]],
                              scores=torch.tensor([[0.9, 0.8]]), space="input", metric="cosine")
    assert [row[1] for row in near.view().data["tables"][0]["rows"]] == [" dog", " cats"]


def test_target_labels_name_tokens_and_classes():
    from attribution_models import tiny_bert, tiny_gpt2, word_tokenizer

    from attnscope.attribution import Contrast, TokenId

    gpt, tok = tiny_gpt2(), word_tokenizer(bert_style=False)
    text = "the cat sat on the"

    def labels(target):
        return ats.attribute(gpt, text, method="saliency", tokenizer=tok, target=target).target_labels

    assert labels(Contrast("mat", "rug")) == ["'mat' \u2212 'rug'"]
    assert labels(TokenId("mat")) == ["token 'mat'"]
    assert labels("mat and") == ["continuation 'mat and'"]
    bert, btok = tiny_bert(), word_tokenizer()
    res = ats.attribute(bert, ["the cat sat", "a dog"], method="saliency", tokenizer=btok, target=[1, 2])
    assert res.target_labels == ["class 1 (LABEL_1)", "class 2 (LABEL_2)"]
    with torch.no_grad():
        probs = bert(**btok(["the cat sat", "a dog"], return_tensors="pt", padding=True)).logits.softmax(-1)
    assert res.predicted == [f"class {int(k)} (LABEL_{int(k)})" for k in probs.argmax(-1)]
    torch.testing.assert_close(res.predicted_prob, probs.max(-1).values)
