"""Regression-adjusted Shapley estimation (``kernel_shap(estimator="surrogate")``), after Witter, Liu & Musco (2025,
"Regression-adjusted Monte Carlo estimators for Shapley values"): fit a surrogate of the game to the sampled
coalitions, take the surrogate's Shapley values exactly, and add the Leverage SHAP estimate of the Shapley values of
what the surrogate misses (the residual game). The residual is small where the surrogate fits, so its sampling
error is too; where the surrogate fits badly the correction still makes the sum an estimate of the game's values.

The surrogate is kernel ridge regression on the coalitions with a product kernel
``k(z, x) = prod_l rho_l ** [z_l != x_l]`` (plus a kernel on the coalition size and a constant; see
:class:`KernelRidge`). Its Shapley values have a closed form: a kernel column ``u(z) = prod_l g_l(z_l)`` is a
product game, whose Shapley value of feature ``i`` is
``(g_i(1) - g_i(0)) * integral_0^1 prod_{l != i} ((1 - t) g_l(0) + t g_l(1)) dt`` (the Shapley weights are the
Beta integrals ``k! (n-k-1)! / n! = integral t^k (1-t)^(n-1-k) dt``); with ``g_l`` equal to 1 or ``rho_l`` each
factor is ``rho_l + (1 - rho_l) t`` or ``1 - (1 - rho_l) t``, a polynomial of degree ``n - 1`` in all that
Gauss-Legendre quadrature with ``ceil(n / 2)`` nodes integrates exactly: ``O(m n^2)`` for ``m`` coalitions, no
enumeration. Unlike a polynomial surrogate it has no term count that grows with ``n``: the paired regression is
already exact for games of order 2, the kernel captures the higher orders that remain.

The kernel's decays follow the features' relevance (the leverage estimate's magnitudes) to a degree chosen, with
the decay scale, the size kernel's weight and the ridge, by exact leave-one-out error (one eigendecomposition per
candidate kernel; the uniform kernel is preferred unless the relevance-weighted one errs clearly less). The
standard errors are the residual regression's, computed from the leave-one-out residuals: the in-sample residuals
of a ridge fit understate how far the surrogate is from the game between the samples."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .shapley_regression import RegressionEstimate

# Kernel decay per differing feature, as multiples of 1/n: rho = exp(-c / n).
DECAYS = (1.0, 2.0, 4.0)
# How much the decay follows each feature's relevance (1: equal for every feature; 0: proportional to relevance).
UNIFORM_SHARES = (1.0, 0.5, 0.2, 0.0)
# A relevance-weighted kernel must beat the uniform one's leave-one-out error by this factor to be chosen (its
# weights come from the same samples).
UNIFORM_PREFERENCE = 1.25
# Weights of the coalition-size kernel exp(-(|z| - |x|)^2 / (2 (n/4)^2)) added to the product kernel.
SIZE_WEIGHTS = (0.0, 1.0)
# Ridge penalties (the product kernel has a unit diagonal).
RIDGES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
# The kernel and ridge are chosen on at most this many rows, spread over the sample (one eigendecomposition per
# candidate kernel); the surrogate is fitted to at most MAX_FIT_ROWS (its cost is cubic in them; the residual
# regression uses every row).
SELECT_ROWS = 128
MAX_FIT_ROWS = 1024

__all__ = ["DECAYS", "MAX_FIT_ROWS", "RIDGES", "SELECT_ROWS", "SIZE_WEIGHTS", "UNIFORM_PREFERENCE", "UNIFORM_SHARES",
           "KernelRidge", "SurrogateEstimate", "product_kernel_shapley"]


def _hamming(a: Tensor, b: Tensor, decay: Tensor) -> Tensor:
    """``[len(a), len(b)]`` sum of ``decay [n]`` over the features in which the coalitions differ (float64)."""
    a, b = a.double(), b.double()
    return (a * decay) @ (1 - b).T + ((1 - a) * decay) @ b.T


def product_kernel_shapley(centres: Tensor, alpha: Tensor, rho: float | Tensor) -> Tensor:
    """``[n]`` Shapley values of ``s(z) = sum_j alpha_j prod_l rho_l ** [z_l != centres_jl]`` (``centres [m, n]``
    bool; ``rho`` one number or ``[n]``, in (0, 1])."""
    m, n = centres.shape
    rho = torch.as_tensor(rho, dtype=torch.float64).expand(n).unsqueeze(1)  # [n, 1]
    nodes, weights = np.polynomial.legendre.leggauss(max(1, math.ceil(n / 2)))
    t = torch.tensor((nodes + 1) / 2, dtype=torch.float64)  # [q] on [0, 1]
    wq = torch.tensor(weights / 2, dtype=torch.float64)
    present, absent = torch.log(rho + (1 - rho) * t), torch.log1p(-(1 - rho) * t)  # [n, q]
    step = max(1, 2**22 // (n * t.numel()))  # centres per chunk: [step, n, q] stays ~32 MB
    phi = torch.zeros(n, dtype=torch.float64)
    for start in range(0, m, step):
        x = centres[start:start + step]
        # log of each feature's factor of the multilinear extension at t, for a centre's present / absent feature
        factor = torch.where(x.unsqueeze(2), present, absent)  # [step, n, q]
        others = torch.exp(factor.sum(1, keepdim=True) - factor)  # the product over the other features
        sign = torch.where(x, 1.0, -1.0).double()
        phi += alpha[start:start + step].double() @ (sign * (1 - rho.squeeze(1)) * (others * wq).sum(2))
    return phi


class KernelRidge:
    """Kernel ridge regression ``s(z) = c + sum_j alpha_j k(z, x_j)`` fitted to ``(x [m, n], y [m])`` with
    ``k(z, x) = exp(-sum_l decay_l [z_l != x_l]) + w exp(-(|z| - |x|)^2 / (2 (n/4)^2))``: a product kernel over the
    features plus one on the coalition size (a function of the size has the Shapley value
    ``(g(n) - g(0)) / n`` for every feature). ``decay_l = c (u + (1 - u) n r_l / sum(r)) / n`` with ``r`` the
    features' ``relevance``; ``c``, ``u``, ``w`` and the ridge chosen by exact leave-one-out error. ``loo``: the
    leave-one-out residuals (``y_j`` minus the fit without row ``j``, the constant kept)."""

    def __init__(self, x: Tensor, y: Tensor, relevance: Tensor | None = None) -> None:
        m, n = x.shape
        self.x, self.c, self.n = x, float(y.mean()), n
        self.width, self.sizes = n / 4, x.sum(1).double()
        yc = y.double() - self.c
        r = torch.ones(n, dtype=torch.float64) if relevance is None else relevance.double().abs()
        r = r * n / r.sum() if float(r.sum()) > 0 else torch.ones(n, dtype=torch.float64)
        rows = torch.linspace(0, m - 1, min(m, SELECT_ROWS)).round().long().unique()
        best = None
        for u in UNIFORM_SHARES if relevance is not None else (1.0,):
            for c in DECAYS:
                decay = c / n * (u + (1 - u) * r)
                for w in SIZE_WEIGHTS:
                    err, ridge, _, _ = self._loo_fit(x[rows], yc[rows], decay, w, RIDGES)
                    err *= 1.0 if u == 1.0 else UNIFORM_PREFERENCE
                    if best is None or err < best[0]:
                        best = (err, decay, w, ridge)
        _, self.decay, self.weight, self.ridge = best
        _, _, self.alpha, self.loo = self._loo_fit(x, yc, self.decay, self.weight, (self.ridge,))

    def _kernel(self, z: Tensor, x: Tensor, decay: Tensor, w: float) -> Tensor:
        K = torch.exp(-_hamming(z, x, decay))
        if w:
            d = z.sum(1).double().unsqueeze(1) - x.sum(1).double()
            K = K + w * torch.exp(-d * d / (2 * self.width**2))
        return K

    def _loo_fit(self, x: Tensor, y: Tensor, decay: Tensor, w: float, ridges) -> tuple[float, float, Tensor, Tensor]:
        """The ridge of ``ridges`` with the least leave-one-out error: ``(error, ridge, alpha, loo residuals)``."""
        e, U = torch.linalg.eigh(self._kernel(x, x, decay, w))
        U2, Uy = U * U, U.T @ y
        best = None
        for ridge in ridges:
            inv = 1.0 / (e + ridge)
            alpha = U @ (inv * Uy)
            loo = alpha / (U2 @ inv)
            err = float((loo * loo).mean())
            if best is None or err < best[0]:
                best = (err, ridge, alpha, loo)
        return best

    def __call__(self, z: Tensor) -> Tensor:
        return self.c + self._kernel(z, self.x, self.decay, self.weight) @ self.alpha

    def _size_part(self, k: float) -> float:
        d = k - self.sizes
        return self.weight * float(torch.exp(-d * d / (2 * self.width**2)) @ self.alpha)

    def shapley(self) -> Tensor:
        phi = product_kernel_shapley(self.x, self.alpha, torch.exp(-self.decay))
        return phi + (self._size_part(self.n) - self._size_part(0)) / self.n


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
        relevance, _ = super().estimate()  # the leverage estimate: which features the kernel should resolve
        s = KernelRidge(x, y, relevance)
        r = self.v - s(self.z)
        r_x, r_b = (y[:2] - s(ends)).tolist()
        phi, _ = self.regression(r, r_b, r_x)
        # standard errors from held-out residuals: each fitted row's leave-one-out residual
        r_loo = r.clone()
        r_loo[fit] = s.loo[2:]
        held_out, se = self.regression(r_loo, float(s.loo[1]), float(s.loo[0]))
        # the correction from held-out residuals is about unbiased but noisy, the in-sample one is shrunk with the
        # fit: their difference estimates that bias, which the error includes
        return s.shapley() + phi, (se * se + (held_out - phi) ** 2).sqrt()
