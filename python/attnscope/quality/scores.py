"""Pure scoring rules over one example's feature scores: rationales chosen from soft scores (ferret's rules), AOPC
coalitions, deletion/insertion orders, Kendall's tau-b, the precision-recall AUC, token F1 and IOU.

Everything here is NumPy over float64 vectors of one example; the model is never called here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "FERRET_THRESHOLDS",
    "aopc_rationales",
    "auprc",
    "curve_auc",
    "kendall_tau_b",
    "ranking",
    "token_f1",
    "token_iou",
    "top_k",
]

# ferret 0.4's default removal: the top 10%, 20%, ..., 100% of the tokens ("perc" thresholds np.arange(0.1, 1.1, 0.1)).
FERRET_THRESHOLDS = tuple(float(v) for v in np.arange(0.1, 1.1, 0.1))


def ranking(scores: np.ndarray) -> np.ndarray:
    """Feature indices from the highest score down, ties broken as ferret's ``argsort()[-k:][::-1]`` breaks them."""
    return np.asarray(scores, dtype=np.float64).argsort()[::-1]


def top_k(scores: np.ndarray, k: int, only_pos: bool) -> list[int]:
    """The ``k`` highest-scored features (ferret's ``_get_id_tokens_top_k``); with ``only_pos`` only those > 0."""
    scores = np.asarray(scores, dtype=np.float64)
    top = ranking(scores)[:k] if k > 0 else np.array([], dtype=np.int64)
    return [int(i) for i in top if not only_pos or scores[i] > 0]


def aopc_rationales(scores: np.ndarray, thresholds: Sequence[float], based_on: str, only_pos: bool) -> list[list[int]]:
    """The rationales AOPC averages over, ferret's way: one per threshold (a fraction of the features for
    ``based_on="perc"``, a count for ``"k"``), leaving out empty ones and one equal to the previous kept one."""
    n = len(scores)
    out: list[list[int]] = []
    last: set[int] | None = None
    for v in thresholds:
        if based_on == "perc":
            k = int(v * n)
            if not 0 < k <= n:
                continue
        else:
            k = int(v)
        top = top_k(scores, k, only_pos)
        if not top or (last is not None and set(top) == last):
            continue
        last = set(top)
        out.append(top)
    return out


def curve_auc(values: np.ndarray) -> float:
    """Area under a curve sampled at fractions ``0, 1/m, ..., 1`` of the features (trapezoid rule)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return float("nan")
    return float(((values[1:] + values[:-1]) / 2).mean())


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b (ties in either variable corrected), as ``scipy.stats.kendalltau``; NaN when either is
    constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.size != y.size:
        raise ValueError(f"kendall_tau_b of vectors of sizes {x.size} and {y.size}")
    dx = np.sign(x[:, None] - x[None, :])
    dy = np.sign(y[:, None] - y[None, :])
    iu = np.triu_indices(x.size, 1)
    dx, dy = dx[iu], dy[iu]
    denom = np.sqrt(float((dx != 0).sum()) * float((dy != 0).sum()))
    return float((dx * dy).sum() / denom) if denom > 0 else float("nan")


def auprc(rationale: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve of ``scores`` against the 0/1 ``rationale``: scikit-learn's
    ``precision_recall_curve`` (one point per distinct score, plus precision 1 at recall 0) integrated with ``auc``
    (trapezoids over recall), which is what ferret computes. Without any positive, recall is 1 at every threshold,
    as scikit-learn sets it (it warns), which gives 0.5."""
    y = np.asarray(rationale).astype(np.float64)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(s, kind="mergesort")[::-1]
    s, y = s[order], y[order]
    distinct = np.where(np.diff(s))[0]
    ends = np.r_[distinct, y.size - 1]
    tps = np.cumsum(y)[ends]
    fps = 1 + ends - tps
    precision = tps / (tps + fps)
    recall = tps / tps[-1] if tps[-1] > 0 else np.ones_like(tps)
    precision = np.r_[precision[::-1], 1.0]
    recall = np.r_[recall[::-1], 0.0]
    return float(abs(np.trapezoid(precision, recall)))


def _hard(rationale: np.ndarray, scores: np.ndarray, k: int, only_pos: bool) -> tuple[np.ndarray, np.ndarray] | None:
    top = top_k(scores, k, only_pos)
    if not top:
        return None
    pred = np.zeros(len(scores), dtype=bool)
    pred[top] = True
    return np.asarray(rationale).astype(bool), pred


def token_f1(rationale: np.ndarray, scores: np.ndarray, k: int = 5, only_pos: bool = True) -> float:
    """Token-level F1 of the top-``k`` features against the rationale (ERASER / ferret; 0 when nothing is
    chosen or the rationale marks nothing: ferret's ``_f1`` returns 0 when precision is 0)."""
    pair = _hard(rationale, scores, k, only_pos)
    if pair is None:
        return 0.0
    true, pred = pair
    tp = float((true & pred).sum())
    if tp == 0:
        return 0.0
    precision, recall = tp / pred.sum(), tp / true.sum()
    return float(2 * precision * recall / (precision + recall))


def token_iou(rationale: np.ndarray, scores: np.ndarray, k: int = 5, only_pos: bool = True) -> float:
    """Token-level intersection over union of the top-``k`` features and the rationale (ERASER / ferret)."""
    pair = _hard(rationale, scores, k, only_pos)
    if pair is None:
        return 0.0
    true, pred = pair
    union = float((true | pred).sum())
    return float((true & pred).sum() / union) if union else 0.0
