"""Global surrogates: on a model whose output is a known sparse linear function of token presence, the lasso
recovers the support and the coefficients; a tree surrogate through scikit-learn; MiniLM's held-out fidelity."""

from __future__ import annotations

import math

import numpy as np
import pytest

import attnscope as ats

from attribution_models import word_tokenizer
from corpus_models import (BIAS, TRUE_COEF, PresenceModel, block_imports, minilm_sentiment, random_texts, reviews,
                           true_output)


@pytest.fixture(scope="module")
def presence_run():
    texts = random_texts(240, seed=3)
    return ats.attribute_dataset(PresenceModel(), word_tokenizer(), texts, method="saliency", batch_size=32,
                                 progress=False)


def test_the_synthetic_model_is_what_it_claims(presence_run):
    for ex in presence_run.examples[:20]:
        assert math.isclose(ex["logits"][1] - ex["logits"][0], true_output(ex["text"]), abs_tol=1e-6)


def test_lasso_recovers_support_and_coefficients(presence_run):
    fit = presence_run.surrogate(kind="sparse_linear", features="tokens", alpha=1e-3)
    table = fit.to_pandas()
    support = set(table.index[table["coef"].abs() > 0.05])
    assert support == set(TRUE_COEF)
    for word, c in TRUE_COEF.items():
        assert abs(table.loc[word, "coef"] - c) < 0.02, (word, table.loc[word, "coef"], c)
    assert abs(fit.intercept[0] - BIAS) < 0.05
    assert fit.fidelity["r2"] > 0.999 and fit.fidelity["agreement"] == 1.0 and fit.fidelity["converged"]
    assert fit.disagreements.empty
    # a large penalty keeps only the strongest features (sparsity is the point)
    strong = presence_run.surrogate(alpha=0.2)
    assert set(strong.to_pandas().index) <= set(TRUE_COEF) and "cat" in strong.to_pandas().index
    assert strong.fidelity["r2"] < fit.fidelity["r2"] and strong.fidelity["n_nonzero"] < len(TRUE_COEF)


def test_predict_matches_the_model_on_new_texts(presence_run):
    fit = presence_run.surrogate(alpha=1e-3)
    new = ats.attribute_dataset(PresenceModel(), word_tokenizer(), random_texts(20, seed=99), progress=False)
    np.testing.assert_allclose(fit.predict(new.examples), [true_output(ex["text"]) for ex in new.examples], atol=0.05)


def test_tree_surrogate_and_view(presence_run):
    pytest.importorskip("sklearn")
    tree = presence_run.surrogate(kind="tree", max_depth=2)
    assert tree.to_pandas().index[0] == "cat"  # the largest effect splits first
    assert "cat" in tree.rules()
    assert 0 < tree.fidelity["r2"] < 1
    html = tree.view().html
    assert "<pre" in html and "&lt;=" in html
    assert presence_run.surrogate().view().html.count("<rect") >= len(TRUE_COEF)


def test_tree_without_scikit_learn_says_how_to_get_it(presence_run, monkeypatch):
    block_imports(monkeypatch, "sklearn")
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        presence_run.surrogate(kind="tree")


def test_bad_surrogate_arguments(presence_run):
    with pytest.raises(ValueError, match="kind='forest'"):
        presence_run.surrogate(kind="forest")
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0"):
        presence_run.surrogate(alpha=-1)
    with pytest.raises(ValueError, match="test_size must be in"):
        presence_run.surrogate(test_size=1.5)
    no_logits = ats.DatasetAttribution(examples=[{**ex, "logits": None} for ex in presence_run.examples],
                                       method="saliency")
    with pytest.raises(ValueError, match="returns no \\[batch, classes\\] logits"):
        no_logits.surrogate()
    with pytest.raises(ValueError, match="no tokens occur in 1000\\+ training texts"):
        presence_run.surrogate(min_count=1000)


def test_minilm_held_out_fidelity(minilm_path, capsys):
    clf, tok = minilm_sentiment(minilm_path)
    texts, labels = reviews(200, seed=2)
    ds = ats.attribute_dataset(clf, tok, texts, labels=labels, method="saliency", batch_size=40, progress=False)
    fit = ds.surrogate(features="words", alpha=0.01)
    with capsys.disabled():
        print(f"\nMiniLM sentiment head, word surrogate: {fit}")
    assert fit.fidelity["n_test"] == 50 and fit.task == "binary"
    # better than the best constant: positive held-out R², agreement above the majority class's share
    model_classes = [ex["prediction"] for ex in ds.examples]
    majority = max(model_classes.count(0), model_classes.count(1)) / len(model_classes)
    assert fit.fidelity["r2"] > 0 and fit.fidelity["agreement"] > majority
