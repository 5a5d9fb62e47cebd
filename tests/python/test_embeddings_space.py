"""The embedding spaces: neighbours against brute-force cosine search, unembedding against the model's own LM head,
the 2-D projection against numpy's PCA, views in Chromium and bad input."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import attnscope as ats


@pytest.fixture(scope="module")
def organism():
    from attnscope.organisms import load

    return load("induction")


@pytest.fixture(scope="module")
def space(organism):
    model, tok = organism
    return ats.embeddings(model, tok)


@pytest.mark.parametrize("which", ["input", "output"])
def test_neighbors_equal_brute_force_cosine(organism, space, which):
    model, tok = organism
    matrix = (model.get_input_embeddings() if which == "input" else model.get_output_embeddings()).weight.detach()
    query = tok.convert_tokens_to_ids("t17")
    sims = []
    for i in range(matrix.shape[0]):  # one pair at a time, no shared code with the implementation
        if i != query:
            sims.append((float(torch.nn.functional.cosine_similarity(matrix[query].double(), matrix[i].double(),
                                                                     dim=0)), i))
    sims.sort(reverse=True)
    res = space.neighbors("t17", k=7, space=which)
    assert res.ids[0].tolist() == [i for _, i in sims[:7]]
    assert np.allclose(res.scores[0].numpy(), [s for s, _ in sims[:7]], atol=1e-12)
    assert res.tokens[0] == tok.convert_ids_to_tokens([i for _, i in sims[:7]])
    frame = res.to_pandas()
    assert list(frame["rank"]) == list(range(1, 8)) and set(frame["query"]) == {"t17"}
    # An id, a list of queries and a string that encodes to one token give the same rows.
    assert torch.equal(space.neighbors(query, k=7, space=which).ids[0], res.ids[0])
    both = space.neighbors(["t17", "t3"], k=7, space=which)
    assert both.ids.shape == (2, 7) and torch.equal(both.ids[0], res.ids[0])


def test_unembed_equals_the_lm_head(organism, space):
    model, _ = organism
    g = torch.Generator().manual_seed(0)
    vectors = torch.randn(3, model.config.hidden_size, generator=g)
    with torch.no_grad():
        logits = model.get_output_embeddings()(vectors).double()
    top = space.unembed(vectors, k=5)
    assert torch.equal(top.ids, logits.topk(5, dim=-1).indices)
    assert torch.allclose(top.scores, logits.topk(5, dim=-1).values, atol=1e-5)
    assert top.metric == "logit" and top.queries == ["vector 0", "vector 1", "vector 2"]


def test_unembed_of_a_one_hot_direction_returns_its_token(organism):
    model, tok = organism
    model = copy.deepcopy(model)
    head = model.get_output_embeddings().weight
    d = head.shape[1]
    chosen = {5: tok.convert_tokens_to_ids("t40"), 11: tok.convert_tokens_to_ids("t99")}
    with torch.no_grad():
        head.mul_(0.01)  # every other token's row is small
        for direction, token in chosen.items():
            head[token] = 0
            head[token, direction] = 1.0  # this token's unembedding row is the one-hot direction
    space = ats.embeddings(model, tok)
    for direction, token in chosen.items():
        res = space.unembed(torch.nn.functional.one_hot(torch.tensor(direction), d).float(), k=3)
        assert int(res.ids[0, 0]) == token and res.tokens[0][0] == tok.convert_ids_to_tokens(token)


def test_projection_equals_numpy_pca(organism, space):
    model, _ = organism
    tokens = [f"t{i}" for i in range(0, 40, 3)]
    res = space.project(tokens)
    ids = res.ids.tolist()
    x = model.get_input_embeddings().weight.detach().double().numpy()[ids]
    x = x - x.mean(0)
    cov = x.T @ x
    evals, evecs = np.linalg.eigh(cov)
    order = np.argsort(evals)[::-1][:2]
    want = x @ evecs[:, order]
    for c in range(2):  # a component's sign is a convention: compare up to sign
        got = res.coords[:, c].numpy()
        assert min(np.abs(got - want[:, c]).max(), np.abs(got + want[:, c]).max()) < 1e-8
    assert np.allclose(res.explained.numpy(), evals[order] / evals.sum(), atol=1e-10)
    assert list(res.to_pandas()["token"]) == tokens


def test_views_in_chromium(browser, tmp_path, screenshots, space):
    from test_views import load

    near = space.neighbors(["t17", "t3"], k=5)
    path = near.save_html(tmp_path / "neighbors.html")
    assert load(browser, path) == []
    cells = browser.find_elements("css selector", ".ats-table td")
    assert len(cells) == 2 * 5 * 4 and cells[1].text == near.tokens[0][0]
    browser.save_screenshot(str(screenshots / "neighbors.png"))
    proj = space.project([f"t{i}" for i in range(12)])
    path = proj.save_html(tmp_path / "projection.html")
    assert load(browser, path) == []
    root = browser.find_element("css selector", ".attnscope-view")
    assert root.get_attribute("data-token-count") == "12" and root.get_attribute("data-rendered") == "1"
    browser.save_screenshot(str(screenshots / "projection.png"))
    proj.plot().savefig(tmp_path / "projection.png")
    near.plot(1).savefig(tmp_path / "neighbors.png")
    assert (tmp_path / "projection.png").stat().st_size > 1000


def test_results_save_and_load(tmp_path, space):
    near = space.neighbors("t5", k=4)
    back = ats.load(near.save(tmp_path / "near"))
    assert back.tokens == near.tokens and torch.equal(back.ids, near.ids)
    proj = space.project(["t1", "t2", "t3"])
    back = ats.load(proj.save(tmp_path / "proj"))
    assert torch.equal(back.coords, proj.coords) and back.tokens == proj.tokens


def test_bad_input(space, minilm_path):
    with pytest.raises(ValueError, match=r"token 'zebra' is not in the vocabulary \(it encodes to"):
        space.neighbors("zebra", k=3)
    with pytest.raises(ValueError, match="token id 5000 out of range: the embedding matrix has 131 rows"):
        space.neighbors(5000)
    for k in (0, -2, 1.5):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            space.neighbors("t1", k=k)
        with pytest.raises(ValueError, match="k must be a positive integer"):
            space.unembed(torch.zeros(64), k=k)
    with pytest.raises(ValueError, match=r"unknown space 'hidden': use one of 'input', 'output'"):
        space.neighbors("t1", space="hidden")
    with pytest.raises(ValueError, match=r"unknown projection method 'tsne': use one of 'pca'"):
        space.project(["t1", "t2"], method="tsne")
    with pytest.raises(ValueError, match="at least 2 tokens"):
        space.project(["t1"])
    with pytest.raises(ValueError, match=r"vector must be \[hidden=64\]"):
        space.unembed(torch.zeros(3))
    with pytest.raises(TypeError, match="tokenizer must be"):
        ats.embeddings(space.model, None)
    from transformers import AutoModel, AutoTokenizer

    bert = ats.embeddings(AutoModel.from_pretrained(minilm_path), AutoTokenizer.from_pretrained(minilm_path))
    assert bert.neighbors("cat", k=3).tokens[0]  # the input space works
    with pytest.raises(ValueError, match="has no LM head .* no output space"):
        bert.neighbors("cat", space="output")


def test_table_and_scatter_render_payloads_as_text(browser, tmp_path):
    from test_views import EXTERNAL, PAYLOADS, load

    from attnscope.viz import scatter_view, table_view

    views = {
        "table": table_view([{"title": PAYLOADS[0], "columns": ["a", "b"], "rows": [[p, p] for p in PAYLOADS]}]),
        "scatter": scatter_view(torch.randn(len(PAYLOADS), 2), PAYLOADS),
    }
    for name, view in views.items():
        for pattern in EXTERNAL:
            assert not pattern.search(view.html), f"{name} view references {pattern.pattern}"
        assert load(browser, view.save_html(tmp_path / f"{name}.html")) == []
        assert browser.execute_script("return typeof window.pwned") == "undefined"
        assert browser.find_elements("css selector", "img") == []
        if name == "table":
            assert PAYLOADS[0] in browser.find_element("css selector", ".attnscope-view").text
    with pytest.raises(ValueError, match="a row has 1 cells but the table has 2 columns"):
        table_view([{"columns": ["a", "b"], "rows": [["x"]]}])
    with pytest.raises(ValueError, match=r"does not match 3 labels \(need \[n, 2\]\)"):
        scatter_view(torch.zeros(2, 2), ["a", "b", "c"])
