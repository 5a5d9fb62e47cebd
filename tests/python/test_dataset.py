"""attribute_dataset: the same per-example scores as attribute one by one, aggregates, resuming."""

from __future__ import annotations

import json
import random

import pandas as pd
import pytest
import torch

import attnscope as ats

from attribution_models import WORDS, tiny_bert, word_tokenizer


@pytest.fixture(scope="module")
def corpus():
    rng = random.Random(0)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 30))) for _ in range(200)]


@pytest.fixture(scope="module")
def dataset_result(corpus):
    return ats.attribute_dataset(tiny_bert(), word_tokenizer(), corpus, method="saliency", target=1, batch_size=16,
                                 progress=False)


def test_same_scores_as_one_by_one(corpus, dataset_result):
    model, tok = tiny_bert(), word_tokenizer()
    assert len(dataset_result.examples) == 200
    worst = 0.0
    for i in range(200):
        one = ats.attribute(model, tok([corpus[i]], return_tensors="pt"), method="saliency", target=1)
        got = torch.tensor(dataset_result.examples[i]["scores"])
        worst = max(worst, (one.scores[0] - got).abs().max().item())
        assert dataset_result.examples[i]["tokens"][0] == "[CLS]"
    assert worst <= 1e-5


def test_aggregates_equal_a_pandas_groupby(dataset_result):
    frame = dataset_result.to_pandas()
    want = frame.assign(a=frame["score"].abs()).groupby("token")["a"].mean()
    got = dataset_result.by_token()["mean_abs_score"]
    pd.testing.assert_series_equal(got.sort_index(), want.sort_index(), check_names=False)
    per_pos = frame.assign(a=frame["score"].abs()).groupby("position")["a"].mean()
    pd.testing.assert_series_equal(dataset_result.by_position()["mean_abs_score"], per_pos, check_names=False)
    classes = dataset_result.top_tokens_per_class(k=3)
    assert classes and all(len(v) <= 3 for v in classes.values())


def test_resume_skips_finished_rows(corpus, tmp_path):
    model, tok = tiny_bert(), word_tokenizer()
    texts = corpus[:20]
    ats.attribute_dataset(model, tok, texts, method="saliency", target=0, batch_size=4, out=tmp_path, progress=False)
    lines = (tmp_path / "rows.jsonl").read_text().splitlines()
    # Simulate an interruption: keep 9 rows and half a line.
    (tmp_path / "rows.jsonl").write_text("\n".join(lines[:9]) + "\n" + lines[9][:15])
    calls = []
    import attnscope.attribution.dataset_rows as ds  # the batch worker both engines share

    original = ds.attribute

    def counting(model, enc, **kw):
        calls.append(enc.batch)
        return original(model, enc, **kw)

    ds.attribute = counting
    try:
        res = ats.attribute_dataset(model, tok, texts, method="saliency", target=0, batch_size=4, out=tmp_path,
                                    progress=False)
    finally:
        ds.attribute = original
    assert sum(calls) == 11  # only the unfinished examples were recomputed
    assert [ex["index"] for ex in res.examples] == list(range(20))
    kept = [json.loads(line) for line in lines[:9]]
    assert [res.examples[k["index"]]["scores"] for k in kept] == [k["scores"] for k in kept]


def test_dataset_result_round_trip(dataset_result, tmp_path):
    back = ats.load(dataset_result.save(tmp_path / "ds"))
    assert back.examples == dataset_result.examples and back.method == "saliency"


def test_bad_inputs():
    with pytest.raises(ValueError, match="texts is empty"):
        ats.attribute_dataset(tiny_bert(), word_tokenizer(), [], method="saliency")
    with pytest.raises(ValueError, match=r"texts\[1\] is not a non-empty string"):
        ats.attribute_dataset(tiny_bert(), word_tokenizer(), ["the cat", "  "], method="saliency")
