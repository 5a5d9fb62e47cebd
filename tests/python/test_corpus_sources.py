"""Corpora for attribute_dataset: every source kind gives the same texts and labels; bad sources fail clearly."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from attnscope.attribution.sources import read_corpus

TEXTS = ["the cat sat", "a dog ran", "the red house", "she is big"]
LABELS = [1, 0, 1, 0]


@pytest.fixture(scope="module")
def frame():
    return pd.DataFrame({"id": range(4), "sentence": TEXTS, "gold": LABELS})


def test_list_and_labels():
    corpus = read_corpus(TEXTS, labels=LABELS)
    assert corpus.texts == TEXTS and corpus.labels == LABELS


@pytest.mark.parametrize("kind", ["parquet", "csv", "jsonl", "dataframe", "hf", "hf_dict", "hf_folder"])
def test_each_source_gives_the_same_corpus(kind, frame, tmp_path):
    if kind == "parquet":
        source = tmp_path / "c.parquet"
        frame.to_parquet(source)
    elif kind == "csv":
        source = tmp_path / "c.csv"
        frame.to_csv(source, index=False)
    elif kind == "jsonl":
        source = tmp_path / "c.jsonl"
        source.write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict(orient="records")))
    elif kind == "dataframe":
        source = frame
    else:
        datasets = pytest.importorskip("datasets")
        source = datasets.Dataset.from_pandas(frame)
        if kind == "hf_dict":
            source = datasets.DatasetDict({"train": source})
        if kind == "hf_folder":
            source.save_to_disk(str(tmp_path / "saved"))
            source = tmp_path / "saved"
    corpus = read_corpus(source, labels="gold")
    assert corpus.texts == TEXTS
    assert corpus.labels == LABELS and all(type(v) is int for v in corpus.labels)


def test_text_file(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("\n".join(TEXTS) + "\n\n")
    assert read_corpus(path).texts == TEXTS


def test_no_text_column_lists_the_columns(frame):
    with pytest.raises(ValueError, match=r"no text column.*columns: id, body, gold"):
        read_corpus(frame.rename(columns={"sentence": "body"}))
    assert read_corpus(frame.rename(columns={"sentence": "body"}), text_column="body").texts == TEXTS
    with pytest.raises(ValueError, match=r"no column 'txt' \(columns: id, sentence, gold\)"):
        read_corpus(frame, text_column="txt")


def test_labels_of_the_wrong_length():
    with pytest.raises(ValueError, match="labels has 3 entries for 4 texts"):
        read_corpus(TEXTS, labels=[1, 0, 1])
    with pytest.raises(ValueError, match=r"labels\[1\] is 0.5"):
        read_corpus(TEXTS, labels=[1, 0.5, 1, 0])
    with pytest.raises(ValueError, match="no label column 'y'"):
        read_corpus(pd.DataFrame({"text": TEXTS}), labels="y")


def test_other_bad_sources(tmp_path, frame):
    with pytest.raises(ValueError, match="unsupported file type '.xlsx'"):
        read_corpus(tmp_path / "c.xlsx")
    with pytest.raises(ValueError, match="no such file"):
        read_corpus(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match=r"texts\[1\] is not a non-empty string"):
        read_corpus(["ok", " "])
    datasets = pytest.importorskip("datasets")
    two = datasets.DatasetDict({"train": datasets.Dataset.from_pandas(frame), "test": datasets.Dataset.from_pandas(frame)})
    with pytest.raises(ValueError, match="has splits train, test; pass split="):
        read_corpus(two)
    assert read_corpus(two, split="test").texts == TEXTS
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a data set saved with save_to_disk"):
        read_corpus(tmp_path / "empty")
