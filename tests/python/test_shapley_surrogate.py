"""The surrogate of kernel_shap(estimator="surrogate"): its closed-form Shapley values against the enumeration
formula, its leave-one-out residuals against refits (the estimator itself: test_shapley_estimators.py)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from attnscope.attribution.perturbation.shapley_surrogate import KernelRidge, product_kernel_shapley


def _enumerated_shapley(value, n: int) -> torch.Tensor:
    """Shapley values by the enumeration formula over all 2**n coalitions of ``value(z [n] bool) -> float``."""
    phi = torch.zeros(n, dtype=torch.float64)
    for bits in itertools.product([False, True], repeat=n):
        k = sum(bits)
        for i in (i for i in range(n) if not bits[i]):
            with_i = list(bits)
            with_i[i] = True
            w = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
            phi[i] += w * (value(torch.tensor(with_i)) - value(torch.tensor(bits)))
    return phi


@pytest.mark.parametrize("n,rho", [(1, 0.5), (2, 0.3), (5, 0.8), (7, 0.05)])
def test_product_kernel_shapley_matches_the_enumeration_formula(n, rho):
    g = torch.Generator().manual_seed(n)
    centres = torch.rand((6, n), generator=g) < 0.5
    alpha = torch.randn(6, generator=g, dtype=torch.float64)

    def value(z):  # plain sum over the centres of rho ** (number of features that differ)
        return float(sum(a * rho ** int((z != c).sum()) for a, c in zip(alpha, centres)))

    got = product_kernel_shapley(centres, alpha, rho)
    assert torch.allclose(got, _enumerated_shapley(value, n), rtol=1e-10, atol=1e-12)


def test_kernel_ridge_leave_one_out_residuals_equal_refits():
    g = torch.Generator().manual_seed(0)
    x = torch.rand((20, 6), generator=g) < 0.5
    y = torch.randn(20, generator=g, dtype=torch.float64) + x.double() @ torch.arange(6.0, dtype=torch.float64)
    fit = KernelRidge(x, y)
    for j in (0, 7, 19):
        keep = torch.arange(20) != j
        xs, ys = x[keep], y[keep]
        K = torch.tensor([[fit.rho ** int((a != b).sum()) for b in xs] for a in xs], dtype=torch.float64)
        # the refit keeps the full fit's constant: the leave-one-out formula is for the kernel part
        alpha = torch.linalg.solve(K + fit.ridge * torch.eye(19, dtype=torch.float64), ys - fit.c)
        k_j = torch.tensor([fit.rho ** int((x[j] != b).sum()) for b in xs], dtype=torch.float64)
        assert math.isclose(float(fit.loo[j]), float(y[j] - fit.c - k_j @ alpha), rel_tol=1e-8, abs_tol=1e-10)
    assert torch.allclose(fit(x), y - fit.ridge * fit.alpha, atol=1e-9)  # (K + ridge I) alpha = y - c
