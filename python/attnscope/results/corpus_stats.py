"""Global aggregates of a data set's attributions, as pandas tables: the summary (per feature, the distribution of
its attributions), per-group top features with confidence intervals, the error breakdown and the agreement of two
methods. A feature is a token or a word; every table is a group-by over one long frame of occurrences."""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

LEVELS = ("tokens", "words")
Z95 = 1.959963984540054  # two-sided 95% normal quantile


def check_level(level: str) -> str:
    if level not in LEVELS:
        raise ValueError(f"features={level!r}: use 'tokens' or 'words'")
    return level


def is_correct(prediction: object, label: object, class_names: Sequence[str] | None) -> bool | None:
    """Whether a prediction (class index) matches a gold label (class index, or class name with ``class_names``)."""
    if prediction is None or label is None:
        return None
    if isinstance(label, str) and class_names is not None and isinstance(prediction, int):
        return 0 <= prediction < len(class_names) and class_names[prediction] == label
    return prediction == label


def occurrences(examples: Sequence[dict], level: str, special: Iterable[str] = (), keep_special: bool = False,
                class_names: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per (example, feature occurrence): example, position, feature, score, prediction, label, correct.

    ``level`` ``"tokens"`` uses the tokens, ``"words"`` the words (sub-word pieces merged, scores summed). The
    tokenizer's special tokens (``special``) are left out unless ``keep_special``.
    """
    names, scores = ("tokens", "scores") if check_level(level) == "tokens" else ("words", "word_scores")
    drop = set() if keep_special else set(special)
    rows = []
    for ex in examples:
        pred, label = ex.get("prediction"), ex.get("label")
        correct = is_correct(pred, label, class_names)
        for p, (feat, score) in enumerate(zip(ex[names], ex[scores])):
            if feat not in drop:
                rows.append((ex["index"], p, feat, float(score), pred, label, correct))
    return pd.DataFrame(rows, columns=["example", "position", "feature", "score", "prediction", "label", "correct"])


def _frequent(frame: pd.DataFrame, min_count: int, keys: list[str]) -> pd.DataFrame:
    if not isinstance(min_count, int) or min_count < 1:
        raise ValueError(f"min_count must be a positive int, got {min_count!r}")
    counts = frame.groupby(keys)["score"].transform("count")
    return frame[counts >= min_count]


def summary_table(frame: pd.DataFrame, k: int, min_count: int) -> pd.DataFrame:
    """Per feature: mean |score|, mean, count and quantiles; the ``k`` largest mean |score| first."""
    kept = _frequent(frame, min_count, ["feature"]).assign(abs_score=lambda f: f["score"].abs())
    grouped = kept.groupby("feature")
    table = pd.DataFrame({
        "mean_abs_score": grouped["abs_score"].mean(),
        "mean_score": grouped["score"].mean(),
        "count": grouped["score"].count(),
        "q05": grouped["score"].quantile(0.05),
        "median": grouped["score"].median(),
        "q95": grouped["score"].quantile(0.95),
    })
    return table.sort_values(["mean_abs_score", "count"], ascending=[False, False]).head(k)


def group_table(frame: pd.DataFrame, by: str, k: int, min_count: int) -> pd.DataFrame:
    """Per value of ``by`` (label or prediction), the ``k`` features with the largest mean score, with count, standard
    deviation and a normal 95% confidence interval of the mean (NaN for a single occurrence)."""
    frame = frame[frame[by].notna()]
    kept = _frequent(frame, min_count, [by, "feature"])
    stats = kept.groupby([by, "feature"])["score"].agg(["mean", "count", "std"]).reset_index()
    half = Z95 * stats["std"] / np.sqrt(stats["count"])
    stats = stats.assign(ci_low=stats["mean"] - half, ci_high=stats["mean"] + half)
    stats = stats.sort_values([by, "mean", "count"], ascending=[True, False, False])
    return stats.groupby(by, sort=True).head(k).rename(columns={by: "group"}).reset_index(drop=True)


def error_table(frame: pd.DataFrame, k: int, min_count: int) -> pd.DataFrame:
    """Per feature, its mean score in wrong and in right predictions; the ``k`` features with the largest mean score
    in wrong predictions first (what drives the mistakes). Needs gold labels."""
    frame = frame[frame["correct"].notna()]
    if frame.empty:
        raise ValueError("the error breakdown needs gold labels and predictions: pass labels= to attribute_dataset "
                         "(a classifier predicts a class per text)")
    wrong = _frequent(frame[~frame["correct"].astype(bool)], min_count, ["feature"])
    right = frame[frame["correct"].astype(bool)]
    table = pd.DataFrame({
        "mean_wrong": wrong.groupby("feature")["score"].mean(),
        "count_wrong": wrong.groupby("feature")["score"].count(),
    })
    by_right = right.groupby("feature")["score"]
    table = table.join(pd.DataFrame({"mean_right": by_right.mean(), "count_right": by_right.count()}), how="left")
    table["count_right"] = table["count_right"].fillna(0).astype(int)
    table["difference"] = table["mean_wrong"] - table["mean_right"]
    return table.sort_values(["mean_wrong", "count_wrong"], ascending=[False, False]).head(k)


def confusion(examples: Sequence[dict]) -> pd.DataFrame:
    """Gold label (rows) x prediction (columns) counts over the examples that have both."""
    pairs = [(ex["label"], ex["prediction"]) for ex in examples
             if ex.get("label") is not None and ex.get("prediction") is not None]
    frame = pd.DataFrame(pairs, columns=["label", "prediction"])
    return pd.crosstab(frame["label"], frame["prediction"])


def _rank_corr(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2:
        return math.nan
    return float(pd.Series(a).corr(pd.Series(b), method="spearman"))


def _top_overlap(a: np.ndarray, b: np.ndarray, k: int) -> float:
    k = min(k, len(a))
    top_a = set(np.argsort(-np.abs(a), kind="stable")[:k].tolist())
    top_b = set(np.argsort(-np.abs(b), kind="stable")[:k].tolist())
    return len(top_a & top_b) / k


def agreement_table(a: Sequence[dict], b: Sequence[dict], k: int) -> pd.DataFrame:
    """Per example: Spearman and Pearson correlation of the two methods' token scores, the share of the top-``k``
    tokens by |score| they share, and the share of tokens whose score has the same sign."""
    if len(a) != len(b):
        raise ValueError(f"the two results cover {len(a)} and {len(b)} examples; compare runs over the same texts")
    rows = []
    for x, y in zip(a, b):
        if x["index"] != y["index"] or x["token_ids"] != y["token_ids"]:
            raise ValueError(f"example {x['index']} has other tokens in the second result (example {y['index']}); "
                             "compare runs over the same texts with the same tokenizer")
        sa, sb = np.asarray(x["scores"], dtype=float), np.asarray(y["scores"], dtype=float)
        pearson = float(np.corrcoef(sa, sb)[0, 1]) if len(sa) > 1 and sa.std() > 0 and sb.std() > 0 else math.nan
        rows.append((x["index"], len(sa), _rank_corr(sa, sb), pearson, _top_overlap(sa, sb, k),
                     float(np.mean(np.sign(sa) == np.sign(sb)))))
    return pd.DataFrame(rows, columns=["example", "n_tokens", "spearman", "pearson", f"top{k}_overlap",
                                       "sign_agreement"])
