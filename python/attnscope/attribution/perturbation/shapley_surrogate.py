"""Regression-adjusted Shapley estimation (``kernel_shap(estimator="surrogate")``), after Witter, Liu & Musco (2025,
"Regression-adjusted Monte Carlo estimators for Shapley values"): fit a surrogate of the game to the sampled
coalitions, take the surrogate's Shapley values exactly, and add the Leverage SHAP estimate of the Shapley values of
what the surrogate misses (the residual game). The residual is small where the surrogate fits, so its sampling
error is too; where the surrogate fits badly the correction still makes the sum an estimate of the game's values.

The surrogate is kernel ridge regression on the coalitions with the product (Hamming) kernel
``k(z, x) = rho ** hamming(z, x)`` plus a constant. Its Shapley values have a closed form: a kernel column
``u(z) = prod_l g_l(z_l)`` is a product game, whose Shapley value of feature ``i`` is
``(g_i(1) - g_i(0)) * integral_0^1 prod_{l != i} ((1 - t) g_l(0) + t g_l(1)) dt`` (the Shapley weights are the
Beta integrals ``k! (n-k-1)! / n! = integral t^k (1-t)^(n-1-k) dt``); with ``g_l`` equal to 1 or ``rho`` the
integrand is ``(rho + (1 - rho) t)^p (1 - (1 - rho) t)^q``, a polynomial of degree ``n - 1`` that Gauss-Legendre
quadrature with ``ceil(n / 2)`` nodes integrates exactly. Unlike a polynomial surrogate it has no term count that
grows with ``n``: the paired regression is already exact for games of order 2, the kernel captures the higher
orders that remain.

``rho`` and the ridge are chosen by exact leave-one-out error over a small grid (one eigendecomposition per
``rho``). The standard errors are the residual regression's, computed from the leave-one-out residuals: the
in-sample residuals of a ridge fit understate how far the surrogate is from the game between the samples."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .shapley_regression import RegressionEstimate

# Kernel decay per differing feature, as multiples of 1/n: rho = exp(-c / n).
DECAYS = (1.0, 2.0, 4.0)
# Ridge penalties (the kernel matrix has a unit diagonal).
RIDGES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
# The surrogate is fitted to at most this many sampled rows (its cost is cubic in them; the residual regression
# uses every row).
MAX_FIT_ROWS = 1024

__all__ = ["DECAYS", "MAX_FIT_ROWS", "RIDGES", "KernelRidge", "SurrogateEstimate", "product_kernel_shapley"]


def _hamming(a: Tensor, b: Tensor) -> Tensor:
    """``[len(a), len(b)]`` number of features in which the coalitions differ (float64)."""
    a, b = a.double(), b.double()
    return a @ (1 - b).T + (1 - a) @ b.T


def product_kernel_shapley(centres: Tensor, alpha: Tensor, rho: float) -> Tensor:
    """``[n]`` Shapley values of ``s(z) = sum_j alpha_j rho ** hamming(z, centres_j)`` (``centres [m, n]`` bool)."""
    m, n = centres.shape
    nodes, weights = np.polynomial.legendre.leggauss(max(1, math.ceil(n / 2)))
    t = torch.tensor((nodes + 1) / 2, dtype=torch.float64)  # on [0, 1]
    wq = torch.tensor(weights / 2, dtype=torch.float64)
    ones = centres.sum(1).double().unsqueeze(1)  # [m, 1]
    present = torch.log(rho + (1 - rho) * t)  # [nodes] log of a present centre feature's factor
    absent = torch.log1p(-(1 - rho) * t)

    def integral(p: Tensor, q: Tensor) -> Tensor:  # integral of the product with p present, q absent factors
        return (torch.exp(p * present + q * absent) * wq).sum(-1)

    zeros = n - ones
    when_in = integral(ones - 1, zeros)  # [m]: feature i is in the centre
    when_out = integral(ones, zeros - 1)
    per = torch.where(centres, when_in.unsqueeze(1), -when_out.unsqueeze(1)) * (1 - rho)  # [m, n]
    return alpha.double() @ per


class KernelRidge:
    """Kernel ridge regression ``s(z) = c + sum_j alpha_j rho ** hamming(z, x_j)`` fitted to ``(x [m, n], y [m])``,
    ``rho`` and the ridge (``(K + ridge I) alpha = y - c``) chosen by exact leave-one-out error; ``loo`` holds the
    leave-one-out residuals."""

    def __init__(self, x: Tensor, y: Tensor) -> None:
        n = x.shape[1]
        self.x, self.c = x, float(y.mean())
        yc = y.double() - self.c
        H = _hamming(x, x)
        best = None
        for decay in DECAYS:
            rho = math.exp(-decay / n)
            e, U = torch.linalg.eigh(rho**H)
            U2 = U * U
            Uy = U.T @ yc
            for ridge in RIDGES:
                inv = 1.0 / (e + ridge)
                alpha = U @ (inv * Uy)
                loo = alpha / (U2 @ inv)  # y_j minus the fit without row j
                err = float((loo * loo).mean())
                if best is None or err < best[0]:
                    best = (err, rho, ridge, alpha, loo)
        _, self.rho, self.ridge, self.alpha, self.loo = best

    def __call__(self, z: Tensor) -> Tensor:
        return self.c + (self.rho ** _hamming(z, self.x)) @ self.alpha

    def shapley(self) -> Tensor:
        return product_kernel_shapley(self.x, self.alpha, self.rho)


class SurrogateEstimate(RegressionEstimate):
    """Leverage SHAP's sampling (paired Poisson sampling without replacement), estimated as the Shapley values of a
    kernel ridge surrogate plus the leverage regression of its residuals (module docstring)."""

    def __init__(self, n: int, paired: bool, generator: torch.Generator) -> None:
        super().__init__(n, "leverage", paired, generator)

    def estimate(self) -> tuple[Tensor, Tensor]:
        if self.n == 1 or self.exhausted:
            return super().estimate()
        ends = torch.stack([torch.ones(self.n, dtype=torch.bool), torch.zeros(self.n, dtype=torch.bool)])
        fit = torch.arange(self.z.shape[0])
        if fit.numel() > MAX_FIT_ROWS:
            fit = torch.randperm(fit.numel(), generator=self.g)[:MAX_FIT_ROWS].sort().values
        x = torch.cat([ends, self.z[fit]])
        y = torch.cat([torch.tensor([self.f_x, self.f_b], dtype=torch.float64), self.v[fit]])
        s = KernelRidge(x, y)
        r = self.v - s(self.z)
        r_x, r_b = (y[:2] - s(ends)).tolist()
        phi, _ = self.regression(r, r_b, r_x)
        # standard errors from held-out residuals: each fitted row's leave-one-out residual
        r_loo = r.clone()
        r_loo[fit] = s.loo[2:]
        _, se = self.regression(r_loo, float(s.loo[1]), float(s.loo[0]))
        return s.shapley() + phi, se
