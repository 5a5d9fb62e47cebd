"""Global views over a data set: every aggregate equals a pandas group-by over the per-example rows (built here,
not by attnscope); views render as static HTML in Chromium; the corpus report holds 10,000 examples."""

from __future__ import annotations

import math
import random

import matplotlib
import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

import attnscope as ats

from attribution_models import WORDS, tiny_bert, word_tokenizer

matplotlib.use("Agg")
SPECIAL = {"[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"}


@pytest.fixture(scope="module")
def corpus():
    rng = random.Random(1)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 14))) for _ in range(120)]
    return texts, [rng.randrange(3) for _ in texts]


@pytest.fixture(scope="module")
def runs(corpus):
    texts, labels = corpus
    model, tok = tiny_bert(), word_tokenizer()
    a = ats.attribute_dataset(model, tok, texts, labels=labels, method="saliency", batch_size=16, progress=False)
    b = ats.attribute_dataset(model, tok, texts, labels=labels, method="input_x_gradient", batch_size=16,
                              progress=False)
    return a, b


def long_rows(ds):
    """The oracle's frame: one row per token occurrence, from the examples as stored."""
    return pd.DataFrame([(ex["index"], tok, s, ex["label"], ex["prediction"])
                         for ex in ds.examples for tok, s in zip(ex["tokens"], ex["scores"]) if tok not in SPECIAL],
                        columns=["example", "token", "score", "label", "prediction"])


def test_rows_carry_labels_predictions_and_logits(runs, corpus):
    ds = runs[0]
    assert [ex["label"] for ex in ds.examples] == corpus[1]
    assert set(ds.special_tokens) >= {"[CLS]", "[SEP]"}
    for ex in ds.examples[:5]:
        logits = np.array(ex["logits"])
        assert ex["prediction"] == int(logits.argmax())
        assert math.isclose(ex["probability"], float(np.exp(logits).max() / np.exp(logits).sum()), rel_tol=1e-9)
        assert math.isclose(sum(ex["word_scores"]), sum(ex["scores"]), abs_tol=1e-9)


def test_summary_equals_a_groupby(runs):
    ds = runs[0]
    frame = long_rows(ds)
    counts = frame.groupby("token")["score"].count()
    kept = frame[frame["token"].map(counts) >= 2]
    want = kept.assign(a=kept["score"].abs()).groupby("token")["a"].mean().sort_values(ascending=False).head(8)
    got = ds.summary(k=8, min_count=2)
    assert list(got.table.index) == list(want.index)
    np.testing.assert_allclose(got.table["mean_abs_score"], want.values, rtol=1e-12)
    for feat, values in zip(got.table.index, got.values):
        assert sorted(values) == sorted(frame.loc[frame["token"] == feat, "score"])
    assert "[CLS]" in ds.summary(k=50, keep_special=True).table.index


def test_top_features_per_label_with_intervals(runs):
    ds = runs[0]
    frame = long_rows(ds)
    got = ds.top_features(by="label", k=4, min_count=3).to_pandas()
    for label, part in got.groupby("group"):
        rows = frame[frame["label"] == label]
        stats = rows.groupby("token")["score"].agg(["mean", "count", "std"])
        stats = stats[stats["count"] >= 3].sort_values(["mean", "count"], ascending=[False, False]).head(4)
        assert list(part["feature"]) == list(stats.index)
        np.testing.assert_allclose(part["mean"], stats["mean"], rtol=1e-12)
        assert list(part["count"]) == list(stats["count"])
        half = 1.959963984540054 * stats["std"] / np.sqrt(stats["count"])
        np.testing.assert_allclose(part["ci_high"] - part["ci_low"], 2 * half, rtol=1e-9)
    by_pred = ds.top_features(by="prediction", k=2, min_count=1).to_pandas()
    assert set(by_pred["group"]) == {ex["prediction"] for ex in ds.examples}


def test_error_breakdown_equals_a_groupby(runs):
    ds = runs[0]
    frame = long_rows(ds).assign(correct=lambda f: f["label"] == f["prediction"])
    res = ds.errors(k=6, min_count=2)
    wrong = frame[~frame["correct"]]
    counts = wrong.groupby("token")["score"].count()
    wrong = wrong[wrong["token"].map(counts) >= 2]
    want = wrong.groupby("token")["score"].agg(["mean", "count"]).sort_values(["mean", "count"],
                                                                                ascending=[False, False]).head(6)
    assert list(res.table.index) == list(want.index)
    np.testing.assert_allclose(res.table["mean_wrong"], want["mean"], rtol=1e-12)
    right = frame[frame["correct"]].groupby("token")["score"].mean()
    np.testing.assert_allclose(res.table["mean_right"], right.reindex(want.index), rtol=1e-12)
    pairs = [(ex["label"], ex["prediction"]) for ex in ds.examples]
    assert res.accuracy == sum(a == b for a, b in pairs) / len(pairs)
    assert int(res.confusion.values.sum()) == len(pairs)


def test_agreement_of_two_methods(runs):
    a, b = runs
    res = a.agreement(b, k=3)
    for ex_a, ex_b, (_, row) in zip(a.examples, b.examples, res.table.iterrows()):
        rho = spearmanr(ex_a["scores"], ex_b["scores"]).statistic
        assert math.isclose(row["spearman"], rho, abs_tol=1e-12) or (math.isnan(rho) and math.isnan(row["spearman"]))
        top = lambda s: set(sorted(range(len(s)), key=lambda i: -abs(s[i]))[:3])  # noqa: E731
        assert row["top3_overlap"] == len(top(ex_a["scores"]) & top(ex_b["scores"])) / 3
    assert -1 <= res.feature_spearman <= 1
    assert math.isclose(a.agreement(a).table["spearman"].min(), 1.0)


def test_bad_inputs_to_the_views(runs):
    ds = runs[0]
    with pytest.raises(ValueError, match="features='chars': use 'tokens' or 'words'"):
        ds.summary(features="chars")
    with pytest.raises(ValueError, match="by='gold'"):
        ds.top_features(by="gold")
    with pytest.raises(ValueError, match="min_count must be a positive int"):
        ds.summary(min_count=0)
    unlabelled = ats.DatasetAttribution(examples=[{**ex, "label": None} for ex in ds.examples], method="saliency")
    with pytest.raises(ValueError, match="needs gold labels"):
        unlabelled.errors()
    with pytest.raises(ValueError, match="pass labels= to attribute_dataset"):
        unlabelled.top_features(by="label")
    with pytest.raises(ValueError, match="other tokens in the second result"):
        ds.agreement(ats.DatasetAttribution(examples=ds.examples[::-1], method="x"))
    with pytest.raises(ValueError, match="labels has 2 entries for 3 texts"):
        ats.attribute_dataset(tiny_bert(), word_tokenizer(), ["a cat", "the dog", "red"], labels=[0, 1])


def test_words_level_and_plots(runs):
    ds = runs[0]
    words = ds.summary(features="words", k=5)
    assert len(words.table) == 5
    for view in (words.view(), ds.top_features().view(), ds.errors().view(), runs[0].agreement(runs[1]).view()):
        assert "<svg" in view.html and "http" not in view.html.split("xmlns")[0]
    for axes in (ds.summary().plot(), ds.errors().plot(), runs[0].agreement(runs[1]).plot()):
        assert axes.has_data()
    assert ds.top_features().plot().axes


def test_parquet_and_jsonl_exports(runs, tmp_path):
    pytest.importorskip("pyarrow")
    ds = runs[0]
    back = pd.read_parquet(ds.to_parquet(tmp_path / "ds.parquet"))
    assert back["index"].tolist() == list(range(len(ds.examples)))
    assert [list(s) for s in back["scores"]] == [ex["scores"] for ex in ds.examples]
    assert back["correct"].tolist() == [ex["label"] == ex["prediction"] for ex in ds.examples]
    lines = pd.read_json(ds.to_jsonl(tmp_path / "ds.jsonl"), lines=True)
    assert lines["text"].tolist() == [ex["text"] for ex in ds.examples]


def test_global_views_in_chromium(browser, runs, tmp_path):
    from test_views import load

    ds = runs[0]
    for name, view in {"summary": ds.summary(), "labels": ds.top_features(), "errors": ds.errors()}.items():
        path = view.save_html(tmp_path / f"{name}.html")
        assert load(browser, path) == []
        assert browser.find_elements("css selector", "svg")


def test_corpus_report_with_10000_examples(browser, runs, tmp_path):
    from test_views import load, page_load_seconds

    base = runs[0].examples
    examples = [{**base[i % len(base)], "index": i} for i in range(10_000)]
    ds = ats.DatasetAttribution(examples=examples, method="saliency", special_tokens=runs[0].special_tokens)
    path = ds.save_html(tmp_path / "report.html")
    assert load(browser, path) == []
    elapsed = page_load_seconds(browser)
    root = browser.find_element("css selector", ".ats-corpus")
    assert root.get_attribute("data-ready") == "1" and root.get_attribute("data-rows") == "10000"
    assert elapsed < 2.0, f"the report took {elapsed:.2f} s to load"
    assert len(browser.find_elements("css selector", ".ats-corpus tbody tr")) == 50
    status = browser.find_element("css selector", ".ats-status")
    search = browser.find_element("css selector", ".ats-search")
    search.send_keys("CAT DOG")
    want = sum("cat dog" in ex["text"].lower() for ex in examples)
    assert want > 0 and status.get_attribute("data-matches") == str(want)
    shown = [int(r.get_attribute("data-index")) for r in browser.find_elements("css selector", ".ats-corpus tbody tr")]
    assert len(shown) == min(50, want) and all("cat dog" in examples[i]["text"] for i in shown)
    search.clear()
    search.send_keys("zzz-nothing")
    assert status.get_attribute("data-matches") == "0"
    search.clear()
    search.send_keys(" ")  # clear() fires no input event; an edit does
    search.send_keys("\b")
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element("css selector", ".ats-sort")).select_by_value("error")
    first = browser.find_element("css selector", ".ats-corpus tbody tr")
    assert "ats-wrong" in first.get_attribute("class")
    browser.find_element("css selector", ".ats-next").click()
    assert status.text.startswith("page 2 / 200")
    assert [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")] == []
