"""Faithfulness metrics: comprehensiveness and sufficiency (AOPC), deletion / insertion curves and their areas,
Kendall tau against leave-one-out, and log-odds.

Every metric of every example becomes a list of coalitions (which features stay); all of them go to the
:class:`~attnscope.quality.removal.Remover` in one call, so a coalition two metrics share runs once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from . import scores as rules
from .removal import Remover

__all__ = ["FaithfulnessOptions", "faithfulness"]


@dataclass(frozen=True)
class FaithfulnessOptions:
    """How rationales are chosen and curves sampled (defaults: ferret 0.4's evaluators)."""

    thresholds: tuple[float, ...] = rules.FERRET_THRESHOLDS  # AOPC: fractions (based_on="perc") or counts ("k")
    based_on: str = "perc"
    only_pos: bool = True  # rationales hold only features with a positive score
    steps: int | None = None  # curve points: every feature count (None) or steps + 1 evenly spaced counts
    log_odds_fraction: float = 0.2


def _counts(n: int, steps: int | None) -> list[int]:
    if steps is None or steps >= n:
        return list(range(n + 1))
    return sorted({int(round(v)) for v in np.linspace(0, n, steps + 1)})


def _rows(n: int, sets: Sequence[Sequence[int]], keep: bool) -> Tensor:
    """Coalitions ``[len(sets), n]``: each set kept alone (``keep``) or removed from all features."""
    present = torch.full((len(sets), n), not keep, dtype=torch.bool)
    for r, s in enumerate(sets):
        if len(s):
            present[r, torch.as_tensor(list(s), dtype=torch.long)] = keep
    return present


def _plan(name: str, s: np.ndarray, o: FaithfulnessOptions) -> Tensor:
    n = s.size
    order = rules.ranking(s)
    if name in ("comprehensiveness", "sufficiency"):
        sets = rules.aopc_rationales(s, o.thresholds, o.based_on, o.only_pos)
        return _rows(n, sets, keep=name == "sufficiency")
    if name == "deletion":
        return _rows(n, [order[:k] for k in _counts(n, o.steps)], keep=False)
    if name == "deletion_lerf":
        return _rows(n, [order[::-1][:k] for k in _counts(n, o.steps)], keep=False)
    if name == "insertion":
        return _rows(n, [order[:k] for k in _counts(n, o.steps)], keep=True)
    if name == "tau_loo":
        return _rows(n, [[j] for j in range(n)], keep=False)
    if name == "log_odds":
        k = max(1, int(o.log_odds_fraction * n))
        return _rows(n, [order[:k]], keep=False)
    raise ValueError(f"{name!r} is not a faithfulness metric")


def _value(name: str, s: np.ndarray, f_x: float, f: np.ndarray, score: str) -> tuple[float, np.ndarray | None]:
    """The metric from the target values ``f`` of its coalitions; curves come back too."""
    if name in ("comprehensiveness", "sufficiency"):
        return (float(np.mean(f_x - f)) if f.size else 0.0), None  # no rationale (no positive score): 0, as ferret
    if name in ("deletion", "deletion_lerf", "insertion"):
        return rules.curve_auc(f), f
    if name == "tau_loo":
        return rules.kendall_tau_b(f_x - f, s), None
    if name == "log_odds":
        if score == "prob":
            return float(math.log(max(f[0], 1e-300)) - math.log(max(f_x, 1e-300))), None
        if score == "logprob":
            return float(f[0] - f_x), None
        raise ValueError("log_odds compares probabilities: use score='prob' or 'logprob', not 'target'")
    raise ValueError(f"{name!r} is not a faithfulness metric")


def faithfulness(make_remover: Callable[[list[Tensor]], Remover], feature_scores: list[np.ndarray],
                 names: Sequence[str], options: FaithfulnessOptions,
                 score: str) -> tuple[dict[str, list[float]], dict[str, list[np.ndarray]], Remover]:
    """Per metric, one value per example; per curve metric, the curve of each example (values at 0..n features).
    ``make_remover`` sees every coalition first (to decide whether prefix reuse pays) and returns the remover."""
    plans = [{name: _plan(name, s, options) for name in names} for s in feature_scores]
    coalitions = [torch.cat([p[name] for name in names]) if names else torch.zeros(0, s.size, dtype=torch.bool)
                  for p, s in zip(plans, feature_scores)]
    remover = make_remover(coalitions)
    values = remover.evaluate(coalitions)
    out: dict[str, list[float]] = {name: [] for name in names}
    curves: dict[str, list[np.ndarray]] = {}
    for i, (plan, s) in enumerate(zip(plans, feature_scores)):
        f_all = values[i].numpy()
        start = 0
        f_x = float(remover.f_input[i])
        for name in names:
            m = plan[name].shape[0]
            value, curve = _value(name, s, f_x, f_all[start:start + m], score)
            start += m
            out[name].append(value)
            if curve is not None:
                curves.setdefault(name, []).append(curve)
    return out, curves, remover
