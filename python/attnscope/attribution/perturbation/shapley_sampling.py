"""Shapley value sampling (Castro et al. 2009, Captum's ShapleyValueSampling) over random feature orders."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import DEFAULT_N_SAMPLES, PerturbationMethod, PerturbationOutput
from ..seeds import example_generator
from .engine import PerturbationEngine

__all__ = ["ShapleySampling", "permutations", "shapley_sampling"]


class ShapleySampling(PerturbationMethod):
    name = "shapley_sampling"

    @property
    def n_samples(self) -> int:
        return DEFAULT_N_SAMPLES if self.options.n_samples is None else self.options.n_samples

    def points(self, n_features: int) -> int:
        return self.n_samples * (n_features + 1)

    def compute(self, engine: PerturbationEngine, seed: int) -> PerturbationOutput:
        return shapley_sampling(engine, self.n_samples, seed, bool(self.options.antithetic))


def permutations(n: int, m: int, generator: torch.Generator, antithetic: bool) -> Tensor:
    """``[m, n]`` random orders of the features (``[2m, n]`` with each order followed by its reverse)."""
    perms = torch.stack([torch.randperm(n, generator=generator) for _ in range(m)])
    if antithetic:
        perms = torch.stack([perms, perms.flip(1)], dim=1).reshape(2 * m, n)
    return perms


def shapley_sampling(engine: PerturbationEngine, n_samples: int, seed: int, antithetic: bool) -> PerturbationOutput:
    """Captum ``ShapleyValueSampling``: for each random order, add the features one by one to the all-absent input
    and credit each with the change of the target; average over the orders."""
    sets, perms = [], []
    for i, n in enumerate(engine.n_features):
        p = permutations(n, n_samples, example_generator(seed, i), antithetic)  # [P, n]
        rank = p.argsort(1)  # rank[q, f]: where feature f comes in order q
        steps = torch.arange(n + 1).view(1, n + 1, 1)
        z = rank.unsqueeze(1) < steps  # [P, n+1, n]: the first j features of the order present
        sets.append(z.reshape(-1, n))
        perms.append(rank)
    values = engine.evaluate(sets)
    scores, f_base = [], []
    for i, (rank, v) in enumerate(zip(perms, values)):
        n = engine.n_features[i]
        v = v.view(-1, n + 1)  # [P, n+1]
        gain = v.gather(1, rank + 1) - v.gather(1, rank)  # [P, n]
        scores.append(gain.mean(0))
        f_base.append(float(v[0, 0]))
    return PerturbationOutput(scores, f_baseline=torch.tensor(f_base, dtype=torch.float64))
