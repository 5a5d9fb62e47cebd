"""Perturbation attribution methods on top of the :class:`~attnscope.attribution.perturbation.PerturbationEngine`.

Each method draws its coalitions (or permutations, or windows) once per example from that example's generator,
hands all of them to the engine in one call (the engine batches, deduplicates and reuses the KV prefix), and
reduces the values to one score per feature. The weighted least-squares fits of LIME and KernelSHAP run in C++
(Eigen) through :func:`attnscope.ops.weighted_least_squares` / :func:`attnscope.ops.weighted_lasso`.

The samplers are public so that a test can feed Captum the very same draws.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from .perturbation import PerturbationEngine, example_generator, n_windows

DISTANCES = ("cosine", "euclidean")
SURROGATES = ("ridge", "lasso", "linear")
KERNEL_SHAP_MODES = ("sampled", "exact")
# kernel_shap(mode="exact") with n_samples=None enumerates all 2**n - 2 coalitions up to this many features.
EXACT_MAX_FEATURES = 16
# Captum KernelShap's weight of the all-present and all-absent rows (sampled mode).
KERNEL_SHAP_INF_WEIGHT = 1_000_000.0
# Captum's defaults: n_samples 25 (Lime, KernelShap, ShapleyValueSampling), kernel width 1, ridge alpha 1 (sklearn
# Ridge()), lasso alpha 0.01 (Captum Lime's SkLearnLasso(alpha=0.01)).
DEFAULT_N_SAMPLES = 25
DEFAULT_ALPHA = {"ridge": 1.0, "lasso": 0.01, "linear": 0.0}

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_N_SAMPLES",
    "DISTANCES",
    "EXACT_MAX_FEATURES",
    "KERNEL_SHAP_MODES",
    "PerturbationOutput",
    "SURROGATES",
    "exact_coalitions",
    "kernel_shap",
    "kernel_shap_coalitions",
    "lime",
    "lime_coalitions",
    "occlusion",
    "permutations",
    "shapley_kernel_weight",
    "shapley_sampling",
]


@dataclass
class PerturbationOutput:
    feature_scores: list[Tensor]  # per example [n_features] float64
    intercept: Tensor | None = None  # [batch] (LIME, KernelSHAP)
    local_r2: Tensor | None = None  # [batch] weighted R² of the surrogate (LIME, KernelSHAP)
    f_baseline: Tensor | None = None  # [batch] the target with every feature absent


# --- samplers ----------------------------------------------------------------------------------------------------
def lime_coalitions(n: int, m: int, generator: torch.Generator) -> Tensor:
    """``[m, n]`` bool: each feature kept with probability 1/2 (Captum Lime's default perturb_func)."""
    return torch.bernoulli(torch.full((m, n), 0.5, dtype=torch.float64), generator=generator).bool()


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
        ranks = torch.rand((rest, n), generator=generator, dtype=torch.float64).argsort(1).argsort(1)
        out[2:] = ranks < size.unsqueeze(1)
    elif rest > 0:
        out[2:] = torch.rand((rest, n), generator=generator) < 0.5
    return out


def permutations(n: int, m: int, generator: torch.Generator, antithetic: bool) -> Tensor:
    """``[m, n]`` random orders of the features (``[2m, n]`` with each order followed by its reverse)."""
    perms = torch.stack([torch.randperm(n, generator=generator) for _ in range(m)])
    if antithetic:
        perms = torch.stack([perms, perms.flip(1)], dim=1).reshape(2 * m, n)
    return perms


def shapley_kernel_weight(n: int, k: Tensor) -> Tensor:
    """The Shapley kernel ``pi(z) = (n-1) / (C(n,|z|) |z| (n-|z|))`` for coalition sizes ``k`` (0 < k < n)."""
    k = k.double()
    log_binom = torch.lgamma(torch.tensor(n + 1.0)) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)
    return (n - 1) / (torch.exp(log_binom) * k * (n - k))


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


# --- the solvers (C++ through ops) ---------------------------------------------------------------------------------
def _ops():
    from .. import ops

    return ops


def _fit(X: Tensor, y: Tensor, w: Tensor, surrogate: str, alpha: float, **kw):
    ops = _ops()
    if surrogate == "lasso":
        return ops.weighted_lasso(X, y, w, alpha=alpha)
    return ops.weighted_least_squares(X, y, w, ridge=alpha if surrogate == "ridge" else 0.0, **kw)


# --- methods -------------------------------------------------------------------------------------------------------
def occlusion(engine: PerturbationEngine, window: int, stride: int) -> PerturbationOutput:
    """Captum ``Occlusion`` on the feature axis: window ``k`` hides features ``[k*stride, k*stride + window)`` (the
    last one cut at the end); a feature's score is the mean of ``f(x) - f(x without the window)`` over the windows
    that cover it."""
    sets = []
    for i, n in enumerate(engine.n_features):
        if window > n:
            raise ValueError(f"window={window} is wider than example {i}'s {n} features; pass window <= {n}")
        w_count = n_windows(n, window, stride)
        z = torch.ones((w_count, n), dtype=torch.bool)
        for k in range(w_count):
            z[k, k * stride : k * stride + window] = False
        sets.append(z)
    values = engine.evaluate(sets)
    scores = []
    for i, (z, v) in enumerate(zip(sets, values)):
        hidden = (~z).double()  # [windows, n]
        diff = engine.f_input[i] - v  # [windows]
        scores.append((diff.unsqueeze(1) * hidden).sum(0) / hidden.sum(0))
    return PerturbationOutput(scores)


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
            sol = _fit(z.double(), v, w, surrogate, alpha)
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


def kernel_shap(engine: PerturbationEngine, n_samples: int | None, seed: int, mode: str) -> PerturbationOutput:
    """KernelSHAP. ``sampled``: Captum's scheme (sizes from the Shapley kernel, equal weights, the two ends weighted
    1e6, an unconstrained linear fit). ``exact``: Shapley kernel weights, intercept fixed to f(all absent) and the
    coefficients summing to f(x) - f(all absent) exactly (all 2**n - 2 coalitions when the budget allows)."""
    scores, intercepts, r2, f_base = [], [], [], []
    sets, weights = [], []
    for i, n in enumerate(engine.n_features):
        g = example_generator(seed, i)
        if mode == "sampled":
            # Default: Captum's 25, raised to 2n + 4 where an example has more features than 25 samples can fit.
            m = max(DEFAULT_N_SAMPLES, 2 * n + 4) if n_samples is None else n_samples
            if m < n + 2:
                raise ValueError(
                    f"kernel_shap needs n_samples >= n_features + 2 (the all-present and all-absent rows and one per "
                    f"feature); example {i} has {n} features and n_samples={m}. Pass n_samples >= {n + 2}, or group "
                    "tokens with features='words' / feature_groups="
                )
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
            sol = _fit(z.double(), v, w, "linear", 0.0, allow_rank_deficient=True)
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
            sol = _ops().weighted_least_squares(
                z[2:].double(), v[2:], w, fit_intercept=False, fixed_intercept=f_b, coef_sum=f_x - f_b,
            )
            scores.append(sol.coef.double())
            intercepts.append(f_b)
            r2.append(sol.r2)
    return PerturbationOutput(
        scores, torch.tensor(intercepts, dtype=torch.float64), torch.tensor(r2, dtype=torch.float64),
        torch.tensor(f_base, dtype=torch.float64),
    )


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
