"""A token holding a right-to-left override (U+202E) cannot reorder its neighbours in any view (issue #22): each
token's text is direction-isolated (CSS unicode-bidi: isolate on its element; FSI/PDI inside longer strings)."""

from __future__ import annotations

import pytest
import torch

from attnscope.viz import dla_view, lens_view, matrix_view, score_table_view, table_view, token_view

from test_views import attention_result, load

RLO = "\u202e"
TOKENS = ["alpha", RLO + "evil", "omega", "tail"]
ISOLATED = ("isolate", "isolate-override", "plaintext")


def views():
    res = attention_result(TOKENS)
    cell = {"top": [[RLO + "top", 0.5], ["next", 0.2]], "entropy": 1.0, "kl": 0.1, "target": [0.3], "rank": [2]}
    return {
        "tokens": token_view([{"tokens": TOKENS, "scores": [0.5, -0.2, 0.1, 0.0]}]),
        "head": res.view("head"),
        "model": res.view("model"),
        "matrix": matrix_view(torch.randn(2, len(TOKENS)), [RLO + "row", "r1"], TOKENS),
        "table": table_view([{"title": "neighbours", "columns": ["token", "score"],
                              "rows": [[t, "0.5"] for t in TOKENS]}]),
        "lens": lens_view(layers=["0", "1"], positions=TOKENS, cells=[[cell] * len(TOKENS)] * 2,
                          targets=[RLO + "tgt"]),
        "dla": dla_view(heads=[[0.1, -0.2]], layers=["0"], bars=[(RLO + "mlp0", 0.3), ("embed", -0.1)], logit=1.0,
                        delta=0.0),
        "score_table": score_table_view([RLO + "saliency", "occlusion"], ["comprehensiveness"], [[0.5], [0.2]],
                                        higher_is_better=[True]),
    }


UNISOLATED = """
var bad = [];
document.querySelectorAll('body *:not(script)').forEach(function (e) {
  Array.prototype.forEach.call(e.childNodes, function (n) {
    if (n.nodeType !== 3 || n.data.indexOf('\\u202e') < 0) return;
    var own = getComputedStyle(e).unicodeBidi;
    var wrapped = /\\u2068[^\\u2069]*\\u202e[^\\u2069]*\\u2069/.test(n.data);
    if (arguments[0].indexOf(own) < 0 && !wrapped) bad.push(e.tagName + '.' + e.className + ': ' + own);
  });
  var t = e.getAttribute && e.getAttribute('title');
  if (t && t.indexOf('\\u202e') >= 0 && !/\\u2068[^\\u2069]*\\u202e[^\\u2069]*\\u2069/.test(t)) bad.push('title ' + t);
});
return bad;
"""


@pytest.mark.parametrize("kind", list(views()))
def test_every_text_holding_an_override_is_isolated(browser, tmp_path, kind):
    path = views()[kind].save_html(tmp_path / f"{kind}.html")
    assert load(browser, path) == []
    seen = browser.execute_script(
        "return Array.prototype.some.call(document.querySelectorAll('body *:not(script)'), function (e) {"
        " return (e.textContent || '').indexOf('\\u202e') >= 0; })")
    if kind not in ("model", "matrix"):  # these two draw their labels on a canvas, one fillText per label
        assert seen, f"the {kind} view shows no token text to check"
    assert browser.execute_script(UNISOLATED.replace("arguments[0]", str(list(ISOLATED)))) == []


def test_an_override_in_one_token_leaves_the_order_of_the_others(browser, tmp_path):
    path = views()["tokens"].save_html(tmp_path / "tokens.html")
    assert load(browser, path) == []
    spans = browser.find_elements("css selector", ".ats-token")
    assert [s.get_attribute("textContent") for s in spans] == TOKENS
    xs = [s.rect["x"] for s in spans]
    assert xs == sorted(xs), f"tokens out of order on screen: {list(zip(TOKENS, xs))}"
