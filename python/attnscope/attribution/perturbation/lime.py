"""LIME (Ribeiro et al. 2016, Captum's Lime): a weighted linear surrogate fitted on random coalitions."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import DEFAULT_N_SAMPLES, PerturbationMethod, PerturbationOutput, fit_surrogate
from ..seeds import example_generator
from .engine import PerturbationEngine

# Captum's defaults: ridge alpha 1 (sklearn Ridge()), lasso alpha 0.01 (Captum Lime's SkLearnLasso(alpha=0.01)).
DEFAULT_ALPHA = {"ridge": 1.0, "lasso": 0.01, "linear": 0.0}

__all__ = ["DEFAULT_ALPHA", "Lime", "lime", "lime_coalitions"]


class Lime(PerturbationMethod):
    name = "lime"

    def check(self) -> None:
        if self.options.alpha is not None and self.options.surrogate == "linear":
            raise ValueError("surrogate='linear' has no penalty; drop alpha= or use surrogate='ridge' / 'lasso'")

    def points(self, n_features: int) -> int:
        return self.n_samples

    @property
    def n_samples(self) -> int:
        return DEFAULT_N_SAMPLES if self.options.n_samples is None else self.options.n_samples

    def compute(self, engine: PerturbationEngine, seed: int) -> PerturbationOutput:
        o = self.options
        alpha = DEFAULT_ALPHA[o.surrogate] if o.alpha is None else o.alpha
        return lime(engine, self.n_samples, seed, o.distance, float(o.kernel_width), o.surrogate, alpha)


def lime_coalitions(n: int, m: int, generator: torch.Generator) -> Tensor:
    """``[m, n]`` bool: each feature kept with probability 1/2 (Captum Lime's default perturb_func)."""
    return torch.bernoulli(torch.full((m, n), 0.5, dtype=torch.float64), generator=generator).bool()


def _similarities(engine: PerturbationEngine, i: int, z: Tensor, distance: str, width: float) -> Tensor:
    """Captum's ``get_exp_kernel_similarity_function(distance, width)`` between the example's word embeddings and
    the perturbed ones (non-padding positions): ``exp(-d^2 / (2 width^2))``, d = 1 - cosine or the L2 distance."""
    emb, rep = engine.word_embeddings(i)  # [seq, hidden], [hidden]
    att = (engine.inputs.attention_mask[i] != 0).cpu()
    emb = emb[att]
    kept = engine.token_present(i, z)[:, att].double()  # [m, L]
    if distance == "cosine":
        sq = (emb * emb).sum(1)  # |e_t|^2
        dot_r = emb @ rep  # e_t . r
        dot = kept @ sq + (1 - kept) @ dot_r
        norm_p = torch.sqrt(kept @ sq + (1 - kept).sum(1) * (rep @ rep))
        norm_o = torch.sqrt(sq.sum())
        cos = dot / (torch.clamp(norm_p * norm_o, min=1e-8))
        d = 1 - cos
    else:
        d = torch.sqrt((1 - kept) @ ((emb - rep) ** 2).sum(1))
    return torch.exp(-(d**2) / (2 * width**2))


def lime(
    engine: PerturbationEngine, n_samples: int, seed: int, distance: str, kernel_width: float, surrogate: str,
    alpha: float,
) -> PerturbationOutput:
    """LIME: coalitions with each feature kept with probability 1/2, weighted by the exponential kernel of the
    embedding distance, fitted by a weighted ridge (default), lasso or plain linear surrogate with intercept."""
    sets = [lime_coalitions(n, n_samples, example_generator(seed, i)) for i, n in enumerate(engine.n_features)]
    values = engine.evaluate(sets)
    scores, intercepts, r2 = [], [], []
    for i, (z, v) in enumerate(zip(sets, values)):
        w = _similarities(engine, i, z, distance, kernel_width)
        try:
            sol = fit_surrogate(z.double(), v, w, surrogate, alpha)
        except ValueError as err:
            if type(err).__name__ != "RankDeficientError":
                raise
            raise ValueError(
                f"lime on example {i}: the {n_samples} samples do not determine {engine.n_features[i]} coefficients "
                f"without a penalty ({err}); use surrogate='ridge' or more n_samples"
            ) from err
        scores.append(sol.coef.double())
        intercepts.append(sol.intercept)
        r2.append(sol.r2)
    return PerturbationOutput(scores, torch.tensor(intercepts, dtype=torch.float64), torch.tensor(r2, dtype=torch.float64))
