"""Corpora for ``attribute_dataset`` and ``attnscope explain``: texts (and gold labels) from a list, a pandas frame,
a Hugging Face ``datasets`` object or ``load_from_disk`` folder, or a Parquet, CSV, JSONL or text file.

Torch-free: the command line reads its corpus (and refuses a bad one) before torch loads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

FILE_SUFFIXES = (".parquet", ".csv", ".jsonl", ".txt")
TEXT_COLUMNS = ("text", "sentence", "content", "document")  # tried in this order when text_column is None


@dataclass
class Corpus:
    """Texts to explain, their gold labels (or None) and where they came from (for messages)."""

    texts: list[str]
    labels: list[Any] | None
    origin: str


def _columns_of(table: Any) -> list[str]:
    return [str(c) for c in (getattr(table, "column_names", None) or list(table.columns))]


def _pick_text_column(columns: Sequence[str], text_column: str | None, origin: str) -> str:
    if text_column is not None:
        if text_column not in columns:
            raise ValueError(f"{origin} has no column {text_column!r} (columns: {', '.join(columns) or 'none'})")
        return text_column
    for name in TEXT_COLUMNS:
        if name in columns:
            return name
    raise ValueError(f"{origin} has no text column: none of {', '.join(TEXT_COLUMNS)} (columns: "
                     f"{', '.join(columns) or 'none'}); pass text_column= (--text-column) naming the one to explain")


def _from_table(table: Any, text_column: str | None, label_column: str | None, origin: str) -> Corpus:
    """A pandas frame or a ``datasets.Dataset``: both index columns by name."""
    columns = _columns_of(table)
    name = _pick_text_column(columns, text_column, origin)
    labels = None
    if label_column is not None:
        if label_column not in columns:
            raise ValueError(f"{origin} has no label column {label_column!r} (columns: {', '.join(columns)})")
        labels = list(table[label_column])
    return Corpus(list(table[name]), labels, origin)


def _hf_dataset(obj: Any, split: str | None, origin: str) -> Any:
    """A ``Dataset`` from a ``Dataset`` or a ``DatasetDict`` (one split, or the one named)."""
    if hasattr(obj, "column_names") and isinstance(obj.column_names, dict):  # a DatasetDict
        splits = list(obj.keys())
        if split is None and len(splits) == 1:
            split = splits[0]
        if split not in obj:
            raise ValueError(f"{origin} has splits {', '.join(splits)}; pass split= (--split) naming one"
                             + ("" if split is None else f" (got {split!r})"))
        return obj[split]
    return obj


def json_lines(text: str, origin: str) -> list[dict]:
    """The rows of JSON-lines ``text`` (a bare string on a line is ``{"text": ...}``); blank lines are skipped and a
    line that is not JSON is a ValueError naming ``origin`` and the line number."""
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{origin}: line {number} is not JSON ({exc.msg})") from None
        rows.append(item if isinstance(item, dict) else {"text": item})
    return rows


def _read_file(path: Path, text_column: str | None, label_column: str | None) -> Corpus:
    import pandas as pd

    if path.suffix == ".txt":
        if label_column is not None:
            raise ValueError(f"{path}: a .txt file has no columns; labels need a .jsonl, .csv or .parquet file")
        texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return Corpus(texts, None, str(path))
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif path.suffix == ".csv":
        frame = pd.read_csv(path, keep_default_na=False)
    else:
        frame = pd.DataFrame(json_lines(path.read_text(encoding="utf-8"), str(path)))
    return _from_table(frame, text_column, label_column, str(path))


def _read_path(path: Path, text_column: str | None, label_column: str | None, split: str | None) -> Corpus:
    if path.is_dir():
        try:
            from datasets import load_from_disk
        except ImportError:
            raise ImportError(f"{path} is a folder: reading a saved data set needs the `datasets` package "
                              "(pip install datasets)") from None
        try:
            loaded = load_from_disk(str(path))
        except FileNotFoundError as exc:
            raise ValueError(f"{path} is not a data set saved with save_to_disk ({exc})") from None
        return _from_table(_hf_dataset(loaded, split, str(path)), text_column, label_column, str(path))
    if path.suffix not in FILE_SUFFIXES:
        raise ValueError(f"{path}: unsupported file type {path.suffix or '(none)'!r}; use "
                         f"{', '.join(FILE_SUFFIXES)} or a datasets save_to_disk folder")
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    return _read_file(path, text_column, label_column)


def _check_texts(corpus: Corpus) -> None:
    if not corpus.texts:
        raise ValueError(f"texts is empty ({corpus.origin} holds no texts): pass at least one text")
    bad = next((i for i, t in enumerate(corpus.texts) if not (isinstance(t, str) and t.strip())), None)
    if bad is not None:
        raise ValueError(f"texts[{bad}] is not a non-empty string: {corpus.texts[bad]!r}")


def _check_labels(corpus: Corpus) -> None:
    if corpus.labels is None:
        return
    if len(corpus.labels) != len(corpus.texts):
        raise ValueError(f"labels has {len(corpus.labels)} entries for {len(corpus.texts)} texts; pass one gold "
                         "label per text")
    bad = next((i for i, v in enumerate(corpus.labels) if not isinstance(v, (int, str)) or isinstance(v, bool)), None)
    if bad is not None and corpus.labels[bad] is not None:
        raise ValueError(f"labels[{bad}] is {corpus.labels[bad]!r}: a gold label is a class index (int), a class "
                         "name (str) or None")


def read_corpus(source: Any, *, labels: Sequence[Any] | str | None = None, text_column: str | None = None,
                split: str | None = None) -> Corpus:
    """Texts and gold labels from ``source``.

    Args:
        source: a list of strings; a pandas DataFrame; a ``datasets.Dataset`` or ``DatasetDict``; or a path to a
            ``save_to_disk`` folder, a ``.parquet``, ``.csv``, ``.jsonl`` (objects with a text field, or strings) or
            ``.txt`` (one text a line) file.
        labels: one gold label per text (class index or class name), or the name of the source's label column.
        text_column: the column holding the texts; default the first of ``text``, ``sentence``, ``content``,
            ``document`` that exists.
        split: the split of a ``DatasetDict`` (needed when it has several).

    Raises:
        ValueError: no text column (the message lists the columns), an empty or non-string text, labels of the
            wrong length or type, an unknown file type.
    """
    label_column = labels if isinstance(labels, str) else None
    if isinstance(source, str) and not Path(source).exists() and Path(source).suffix not in FILE_SUFFIXES:
        raise TypeError(f"texts must be a list of strings, got one string; pass [text] for a single text (or a path "
                        f"to a corpus: {', '.join(FILE_SUFFIXES)} or a datasets save_to_disk folder): {source[:60]!r}")
    if isinstance(source, (str, Path)):
        corpus = _read_path(Path(source), text_column, label_column, split)
    elif hasattr(source, "column_names"):  # datasets.Dataset / DatasetDict
        corpus = _from_table(_hf_dataset(source, split, type(source).__name__), text_column, label_column,
                             type(source).__name__)
    elif hasattr(source, "columns") and hasattr(source, "iloc"):  # pandas.DataFrame
        corpus = _from_table(source, text_column, label_column, "the DataFrame")
    elif isinstance(source, Sequence) or hasattr(source, "__iter__"):
        if label_column is not None:
            raise ValueError(f"labels={labels!r} names a column, but texts is a list; pass one label per text")
        corpus = Corpus(list(source), None, "texts")
    else:
        raise TypeError(f"texts must be a list of strings, got {source!r} ({type(source).__name__}); a DataFrame, a "
                        "datasets object or a path to a corpus file also work")
    if labels is not None and label_column is None:
        corpus.labels = list(labels)
    if corpus.labels is not None:  # numpy and pandas scalars as Python values
        corpus.labels = [v.item() if hasattr(v, "item") else v for v in corpus.labels]
    _check_texts(corpus)
    _check_labels(corpus)
    return corpus
