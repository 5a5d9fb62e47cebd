"""Sampling in rounds until the standard errors are small enough: the stopping rule of ``kernel_shap`` and
``shapley_sampling`` (``tolerance=``).

Each example has an estimate object with ``used`` (samples drawn so far, in the method's ``n_samples`` unit),
``exhausted`` (the estimate is exact), ``draw(total) -> coalitions [k, n]``, ``update(values [k])`` and
``estimate() -> (values [n], standard errors [n])``. Without a tolerance there is one round of ``n_samples``.
With one, the first round is small and each next one is sized from the errors (they fall as ``1 / sqrt(samples)``),
at most 4x the samples so far, until every example's largest standard error is at most ``tolerance`` or its
budget (``n_samples``) is spent. The forwards of all the examples still running go to the engine together; rows an
earlier round evaluated come from the engine's memo.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .engine import PerturbationEngine

# Why an example stopped (AttributionResult.stop_reason).
STOP_REASONS = {
    "n_samples": "drew the n_samples asked for (no tolerance)",
    "tolerance": "largest standard error <= tolerance",
    "budget": "n_samples (the budget) spent before the tolerance was reached",
    "exhausted": "every coalition evaluated: the values are exact",
}
# Growth of the sample between rounds: at least this factor, at most MAX_GROWTH, aiming this much past the
# tolerance.
MIN_GROWTH, MAX_GROWTH, MARGIN = 1.25, 4.0, 1.1

__all__ = ["MARGIN", "MAX_GROWTH", "MIN_GROWTH", "STOP_REASONS", "Sequential", "run_rounds"]


@dataclass
class Sequential:
    """What :func:`run_rounds` returns for one example."""

    values: Tensor  # [n] float64
    standard_errors: Tensor  # [n] float64
    stop_reason: str  # a key of STOP_REASONS
    used: int  # samples drawn (the method's n_samples unit)


def _next_total(used: int, se: float, tolerance: float, budget: int) -> int:
    grow = (se / tolerance) ** 2 * MARGIN if math.isfinite(se) else MAX_GROWTH
    grow = min(MAX_GROWTH, max(MIN_GROWTH, grow))
    return min(budget, max(used + 1, math.ceil(used * grow)))


def run_rounds(engine: PerturbationEngine, states: Sequence, budgets: Sequence[int], first: Sequence[int],
               tolerance: float | None) -> list[Sequential]:
    """Run every example's estimate (``states[i]``) to its stopping point; ``first[i]``: the first round's size
    with a tolerance, ``budgets[i]``: the most samples (all of them in one round without a tolerance)."""
    b = len(states)
    targets = [budgets[i] if tolerance is None else min(budgets[i], first[i]) for i in range(b)]
    done: list[Sequential | None] = [None] * b
    while any(d is None for d in done):
        sets = [states[i].draw(targets[i]) if done[i] is None else torch.zeros((0, engine.n_features[i]), dtype=torch.bool)
                for i in range(b)]
        values = engine.evaluate(sets)
        for i in range(b):
            if done[i] is not None:
                continue
            st = states[i]
            st.update(values[i])
            phi, se = st.estimate()
            worst = float(se.max()) if se.numel() else 0.0
            if st.exhausted:
                reason = "exhausted"
            elif tolerance is None:
                reason = "n_samples"
            elif worst <= tolerance:
                reason = "tolerance"
            elif st.used >= budgets[i] or targets[i] >= budgets[i]:  # (Poisson draws may stop a little short)
                reason = "budget"
            else:
                targets[i] = _next_total(st.used, worst, tolerance, budgets[i])
                continue
            done[i] = Sequential(phi, se, reason, st.used)
    return done  # type: ignore[return-value]
