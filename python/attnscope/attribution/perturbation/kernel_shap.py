"""KernelSHAP (Lundberg & Lee 2017): the regression estimators of :mod:`.shapley_regression` (Leverage SHAP by
default, with standard errors and an optional stopping rule), Captum's sampled scheme, or the exact constrained
Shapley-kernel fit."""

from __future__ import annotations

import itertools
import math
import warnings

import torch
from torch import Tensor

from ... import ops
from .base import DEFAULT_N_SAMPLES, PerturbationMethod, PerturbationOutput, fit_surrogate
from ..seeds import example_generator
from .engine import PerturbationEngine
from .rounds import run_rounds
from .shapley_regression import RegressionEstimate, random_subsets, shapley_kernel_weight
from .shapley_surrogate import SurrogateEstimate

# kernel_shap(mode="exact") with n_samples=None enumerates all 2**n - 2 coalitions up to this many features.
EXACT_MAX_FEATURES = 16
# Captum KernelShap's weight of the all-present and all-absent rows (sampled mode).
KERNEL_SHAP_INF_WEIGHT = 1_000_000.0
# The estimator when estimator= is not given (chosen by accuracy per model evaluation: bench/perturbation.py).
DEFAULT_ESTIMATOR = "leverage"
# The sampled estimators with standard errors (estimator="captum" is the other one).
ESTIMATORS = ("leverage", "kernel", "unbiased", "surrogate")
# With tolerance= and no n_samples: the most coalitions drawn, per feature.
TOLERANCE_BUDGET_PER_FEATURE = 200

__all__ = ["DEFAULT_ESTIMATOR", "ESTIMATORS", "EXACT_MAX_FEATURES", "KernelShap", "TOLERANCE_BUDGET_PER_FEATURE",
           "exact_coalitions", "kernel_shap", "kernel_shap_coalitions", "regression_estimate",
           "shapley_kernel_weight"]


class KernelShap(PerturbationMethod):
    name = "kernel_shap"

    def check(self) -> None:
        o = self.options
        if o.mode == "exact":
            given = [k for k in ("estimator", "paired", "tolerance") if getattr(o, k) is not None]
            if given:
                raise ValueError(
                    f"kernel_shap(mode='exact') fits all coalitions (or a budget of them by size); {', '.join(given)}= "
                    "applies to mode='sampled' only"
                )
        elif o.estimator == "captum":
            if o.paired:
                raise ValueError("estimator='captum' is Captum's scheme, which draws no complements; paired=True "
                                 f"needs one of {', '.join(ESTIMATORS)}")
            if o.tolerance is not None:
                raise ValueError("estimator='captum' reports no standard errors, so it cannot stop at a tolerance; "
                                 f"use one of {', '.join(ESTIMATORS)} with tolerance=")

    @property
    def estimator(self) -> str:
        return self.options.estimator or DEFAULT_ESTIMATOR

    def budget(self, n: int) -> int:
        """The coalitions (the full and the empty one included) drawn for an example of ``n`` features in sampled
        mode; with ``tolerance=``, the most."""
        o = self.options
        if o.n_samples is not None:
            return o.n_samples
        if o.tolerance is not None:
            return min(2**min(n, 62), TOLERANCE_BUDGET_PER_FEATURE * n)
        # Captum's 25, raised to 2n + 4 where an example has more features than 25 samples can fit.
        return max(DEFAULT_N_SAMPLES, 2 * n + 4)

    def points(self, n_features: int) -> int:
        if self.options.mode == "exact":
            return self.options.n_samples or 2**min(n_features, 16)
        return self.budget(n_features)

    def compute(self, engine: PerturbationEngine, seed: int) -> PerturbationOutput:
        o = self.options
        if o.mode == "exact":
            return kernel_shap(engine, o.n_samples, seed, "exact")
        for i, n in enumerate(engine.n_features):
            m = self.budget(n)
            if m < n + 2:
                raise ValueError(
                    f"kernel_shap needs n_samples >= n_features + 2 (the all-present and all-absent rows and one per "
                    f"feature); example {i} has {n} features and n_samples={m}. Pass n_samples >= {n + 2}, or group "
                    "tokens with features='words' / feature_groups="
                )
        if self.estimator == "captum":
            return kernel_shap(engine, o.n_samples, seed, "sampled")
        return kernel_shap_regression(engine, self.estimator, o.paired is not False,
                                      [self.budget(n) for n in engine.n_features], seed, o.tolerance)


def kernel_shap_regression(engine: PerturbationEngine, estimator: str, paired: bool, budgets: list[int], seed: int,
                           tolerance: float | None) -> PerturbationOutput:
    """KernelSHAP by one of the regression estimators of :mod:`.shapley_regression`, with standard errors; in
    rounds until the largest standard error is at most ``tolerance`` when it is given (:mod:`.rounds`)."""
    states = [regression_estimate(n, estimator, paired, example_generator(seed, i))
              for i, n in enumerate(engine.n_features)]
    first = [min(b, 4 * n + 8) for b, n in zip(budgets, engine.n_features)]
    out = run_rounds(engine, states, budgets, first, tolerance)
    f_b = torch.tensor([s.f_b for s in states], dtype=torch.float64)
    return PerturbationOutput(
        [o.values for o in out], intercept=f_b.clone(), f_baseline=f_b,
        standard_errors=[o.standard_errors for o in out], stop_reason=[o.stop_reason for o in out],
    )


def regression_estimate(n: int, estimator: str, paired: bool, generator: torch.Generator) -> RegressionEstimate:
    """One example's estimate object for ``estimator`` (one of :data:`ESTIMATORS`)."""
    if estimator == "surrogate":
        return SurrogateEstimate(n, paired, generator)
    return RegressionEstimate(n, estimator, paired, generator)


def kernel_shap_coalitions(n: int, m: int, generator: torch.Generator) -> Tensor:
    """``[m, n]`` bool, Captum KernelShap's scheme: row 0 all present, row 1 all absent, then the number of present
    features ``k`` drawn with probability proportional to ``(n-1) / (k (n-k))`` (k = 1..n-1) and a uniform subset
    of that size."""
    out = torch.zeros((m, n), dtype=torch.bool)
    out[0] = True
    rest = m - 2
    if rest > 0 and n > 1:
        k = torch.arange(1, n, dtype=torch.float64)
        probs = (n - 1) / (k * (n - k))
        size = torch.multinomial(probs, rest, replacement=True, generator=generator) + 1  # [rest]
        out[2:] = random_subsets(n, size, generator)
    elif rest > 0:
        out[2:] = torch.rand((rest, n), generator=generator) < 0.5
    return out


def exact_coalitions(n: int, budget: int | None, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Coalitions ``[m, n]`` and weights ``[m]`` for exact-mode KernelSHAP (neither empty nor full).

    With ``budget`` None or ``>= 2**n - 2``: all of them, each with its Shapley kernel weight. Otherwise sizes are
    taken in order of their total kernel weight (1 and n-1, then 2 and n-2, ...): whole sizes while the budget lasts,
    then a uniform sample without replacement of the next size, reweighted so that the size keeps its total weight.
    """
    total = 2**n - 2
    if budget is None or budget >= total:
        codes = torch.arange(1, 2**n - 1, dtype=torch.long)
        z = ((codes.unsqueeze(1) >> torch.arange(n)) & 1).bool()
        return z, shapley_kernel_weight(n, z.sum(1))
    order = []
    for k in range(1, n // 2 + 1):
        order.append(k)
        if n - k != k:
            order.append(n - k)
    rows: list[Tensor] = []
    weights: list[Tensor] = []
    left = budget
    for k in order:
        if left <= 0:
            break
        count = math.comb(n, k)
        w = float(shapley_kernel_weight(n, torch.tensor([k]))[0])
        if count <= left:
            for combo in itertools.combinations(range(n), k):
                row = torch.zeros(n, dtype=torch.bool)
                row[list(combo)] = True
                rows.append(row)
            weights.append(torch.full((count,), w, dtype=torch.float64))
            left -= count
        else:
            seen: set[tuple[int, ...]] = set()
            while len(seen) < left:
                combo = tuple(sorted(torch.randperm(n, generator=generator)[:k].tolist()))
                if combo not in seen:
                    seen.add(combo)
                    row = torch.zeros(n, dtype=torch.bool)
                    row[list(combo)] = True
                    rows.append(row)
            weights.append(torch.full((left,), w * count / left, dtype=torch.float64))
            left = 0
    return torch.stack(rows), torch.cat(weights)


def kernel_shap(engine: PerturbationEngine, n_samples: int | None, seed: int, mode: str) -> PerturbationOutput:
    """KernelSHAP. ``sampled``: Captum's scheme (sizes from the Shapley kernel, equal weights, the two ends weighted
    1e6, an unconstrained linear fit). ``exact``: Shapley kernel weights, intercept fixed to f(all absent) and the
    coefficients summing to f(x) - f(all absent) exactly (all 2**n - 2 coalitions when the budget allows)."""
    scores, intercepts, r2, f_base = [], [], [], []
    sets, weights = [], []
    for i, n in enumerate(engine.n_features):
        g = example_generator(seed, i)
        if mode == "sampled":
            m = max(DEFAULT_N_SAMPLES, 2 * n + 4) if n_samples is None else n_samples  # (KernelShap.budget)
            z = kernel_shap_coalitions(n, m, g)
            w = torch.ones(m, dtype=torch.float64)
            w[:2] = KERNEL_SHAP_INF_WEIGHT
        else:
            if n_samples is None and n > EXACT_MAX_FEATURES:
                raise ValueError(
                    f"kernel_shap(mode='exact') enumerates 2**n - 2 coalitions; example {i} has {n} features "
                    f"(> {EXACT_MAX_FEATURES}). Pass n_samples= to sample them by size, or group tokens"
                )
            if n_samples is not None and n_samples < n:
                raise ValueError(
                    f"kernel_shap(mode='exact') needs n_samples >= n_features; example {i} has {n} features and "
                    f"n_samples={n_samples}"
                )
            z, w = exact_coalitions(n, n_samples, g) if n > 1 else (torch.zeros((0, 1), dtype=torch.bool), torch.zeros(0, dtype=torch.float64))
            ends = torch.stack([torch.ones(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)])
            z = torch.cat([ends, z])
        sets.append(z)
        weights.append(w)
    values = engine.evaluate(sets)
    for i, (z, v, w) in enumerate(zip(sets, values, weights)):
        n = engine.n_features[i]
        f_x, f_b = float(v[0]), float(v[1])
        f_base.append(f_b)
        if mode == "sampled":
            sol = fit_surrogate(z.double(), v, w, "linear", 0.0, allow_rank_deficient=True)
            if sol.rank_deficient:
                warnings.warn(
                    f"kernel_shap on example {i}: the {z.shape[0]} samples are rank deficient (rank {sol.rank} of "
                    f"{n + 1}); the minimum-norm solution is returned. Pass more n_samples",
                    stacklevel=3,
                )
            scores.append(sol.coef.double())
            intercepts.append(sol.intercept)
            r2.append(sol.r2)
        elif n == 1:
            scores.append(torch.tensor([f_x - f_b], dtype=torch.float64))
            intercepts.append(f_b)
            r2.append(1.0)
        else:
            sol = ops.weighted_least_squares(
                z[2:].double(), v[2:], w, fit_intercept=False, fixed_intercept=f_b, coef_sum=f_x - f_b,
            )
            scores.append(sol.coef.double())
            intercepts.append(f_b)
            r2.append(sol.r2)
    errors = reasons = None
    if mode == "exact":  # exact (0) when every coalition was fitted; a budget sampled by size has no error estimate
        full = [n_samples is None or n_samples >= 2**n - 2 for n in engine.n_features]
        errors = [torch.full((n,), 0.0 if f else float("nan"), dtype=torch.float64)
                  for n, f in zip(engine.n_features, full)]
        reasons = ["exhausted" if f else "n_samples" for f in full]
    return PerturbationOutput(
        scores, torch.tensor(intercepts, dtype=torch.float64), torch.tensor(r2, dtype=torch.float64),
        torch.tensor(f_base, dtype=torch.float64), errors, reasons,
    )
