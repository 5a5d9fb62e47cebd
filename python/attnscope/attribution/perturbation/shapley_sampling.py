"""Shapley value sampling (Castro et al. 2009, Captum's ShapleyValueSampling) over random feature orders, with
per-feature standard errors and an optional stopping rule (``tolerance=``, see :mod:`.rounds`)."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import DEFAULT_N_SAMPLES, PerturbationMethod, PerturbationOutput
from ..seeds import example_generator
from .engine import PerturbationEngine
from .rounds import run_rounds

# With tolerance= and no n_samples: the most permutations drawn.
TOLERANCE_MAX_PERMUTATIONS = 1000
# With tolerance=: permutations in the first round. The gains can be skewed (large only for the orders in which a
# feature completes an interaction), and their standard deviation needs a few dozen orders to be trusted.
FIRST_ROUND = 32

__all__ = ["FIRST_ROUND", "PermutationEstimate", "ShapleySampling", "TOLERANCE_MAX_PERMUTATIONS", "permutations",
           "shapley_sampling"]


class ShapleySampling(PerturbationMethod):
    name = "shapley_sampling"

    @property
    def n_samples(self) -> int:
        if self.options.n_samples is not None:
            return self.options.n_samples
        return DEFAULT_N_SAMPLES if self.options.tolerance is None else TOLERANCE_MAX_PERMUTATIONS

    def points(self, n_features: int) -> int:
        return self.n_samples * (n_features + 1)

    def compute(self, engine: PerturbationEngine, seed: int) -> PerturbationOutput:
        return shapley_sampling(engine, self.n_samples, seed, bool(self.options.antithetic), self.options.tolerance)


def permutations(n: int, m: int, generator: torch.Generator, antithetic: bool) -> Tensor:
    """``[m, n]`` random orders of the features (``[2m, n]`` with each order followed by its reverse)."""
    perms = torch.stack([torch.randperm(n, generator=generator) for _ in range(m)])
    if antithetic:
        perms = torch.stack([perms, perms.flip(1)], dim=1).reshape(2 * m, n)
    return perms


class PermutationEstimate:
    """One example's permutation sampling in rounds (the protocol of :func:`.rounds.run_rounds`): a unit is one
    order (with ``antithetic``, an order and its reverse), its per-feature gains one i.i.d. draw of the Shapley
    values; the standard error is their sample standard deviation over ``sqrt(units)``."""

    def __init__(self, n: int, antithetic: bool, generator: torch.Generator) -> None:
        self.n, self.antithetic, self.g = n, antithetic, generator
        self.used = 0  # orders drawn (reverses not counted: n_samples)
        self.exhausted = False
        self.raw = torch.zeros((0, n), dtype=torch.float64)  # [orders, n] gains per order
        self.gains = torch.zeros((0, n), dtype=torch.float64)  # [units, n]
        self.f_b: float | None = None

    def draw(self, total: int) -> Tensor:
        m = max(1, total - self.used)
        self._rank = permutations(self.n, m, self.g, self.antithetic).argsort(1)  # rank[q, f]: place of f in order q
        self.used += m
        steps = torch.arange(self.n + 1).view(1, self.n + 1, 1)
        return (self._rank.unsqueeze(1) < steps).reshape(-1, self.n)  # the first j features of each order present

    def update(self, values: Tensor) -> None:
        v = values.view(-1, self.n + 1)  # [P, n+1]
        gain = v.gather(1, self._rank + 1) - v.gather(1, self._rank)  # [P, n]
        self.raw = torch.cat([self.raw, gain])
        if self.antithetic:
            gain = gain.view(-1, 2, self.n).mean(1)
        self.gains = torch.cat([self.gains, gain])
        if self.f_b is None:
            self.f_b = float(v[0, 0])

    def estimate(self) -> tuple[Tensor, Tensor]:
        units = self.gains.shape[0]
        se = self.gains.std(0) / units**0.5 if units >= 2 else torch.full((self.n,), float("nan"), dtype=torch.float64)
        return self.raw.mean(0), se


def shapley_sampling(engine: PerturbationEngine, n_samples: int, seed: int, antithetic: bool,
                     tolerance: float | None = None) -> PerturbationOutput:
    """Captum ``ShapleyValueSampling``: for each random order, add the features one by one to the all-absent input
    and credit each with the change of the target; average over the orders. ``tolerance``: draw orders in rounds
    until every feature's standard error is at most this (``n_samples`` is then the most orders drawn)."""
    states = [PermutationEstimate(n, antithetic, example_generator(seed, i)) for i, n in enumerate(engine.n_features)]
    budgets = [n_samples] * len(states)
    out = run_rounds(engine, states, budgets, [min(n_samples, FIRST_ROUND)] * len(states), tolerance)
    return PerturbationOutput(
        [o.values for o in out], f_baseline=torch.tensor([s.f_b for s in states], dtype=torch.float64),
        standard_errors=[o.standard_errors for o in out], stop_reason=[o.stop_reason for o in out],
    )
