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


@pytest.mark.parametrize("n,rho", [(1, 0.5), (2, 0.3), (5, 0.8), (7, 0.05), (6, "per feature")])
def test_product_kernel_shapley_matches_the_enumeration_formula(n, rho):
    g = torch.Generator().manual_seed(n)
    centres = torch.rand((6, n), generator=g) < 0.5
    alpha = torch.randn(6, generator=g, dtype=torch.float64)
    rho = torch.rand(n, generator=g, dtype=torch.float64) if rho == "per feature" else torch.full((n,), rho, dtype=torch.float64)

    def value(z):  # plain sum over the centres of the product of rho_l over the features that differ
        return float(sum(a * torch.where(z != c, rho, 1.0).prod() for a, c in zip(alpha, centres)))

    got = product_kernel_shapley(centres, alpha, rho)
    assert torch.allclose(got, _enumerated_shapley(value, n), rtol=1e-10, atol=1e-12)


def _kernel(fit, a, b):
    """The surrogate's kernel written out: product over the differing features plus the size term."""
    product = float(torch.exp(-(fit.decay * (a != b)).sum()))
    return product + fit.weight * math.exp(-(int(a.sum()) - int(b.sum())) ** 2 / (2 * (a.numel() / 4) ** 2))


def _data(m=24, n=6):
    g = torch.Generator().manual_seed(0)
    x = torch.rand((m, n), generator=g) < 0.5
    y = torch.randn(m, generator=g, dtype=torch.float64) + x.double() @ torch.arange(float(n), dtype=torch.float64)
    y = y + 3 * (x[:, 0] & x[:, 1] & x[:, 2]).double() + 0.5 * x.sum(1).double() ** 2  # an interaction, a size term
    return x, y


def test_kernel_ridge_leave_one_out_residuals_equal_refits():
    x, y = _data()
    fit = KernelRidge(x, y, relevance=torch.tensor([3.0, 2.0, 1.0, 0.5, 0.2, 0.0]))
    m = x.shape[0]
    for j in (0, 7, m - 1):
        keep = torch.arange(m) != j
        xs, ys = x[keep], y[keep]
        K = torch.tensor([[_kernel(fit, a, b) for b in xs] for a in xs], dtype=torch.float64)
        # the refit keeps the full fit's constant: the leave-one-out formula is for the kernel part
        alpha = torch.linalg.solve(K + fit.ridge * torch.eye(m - 1, dtype=torch.float64), ys - fit.c)
        k_j = torch.tensor([_kernel(fit, x[j], b) for b in xs], dtype=torch.float64)
        assert math.isclose(float(fit.loo[j]), float(y[j] - fit.c - k_j @ alpha), rel_tol=1e-8, abs_tol=1e-10)
    assert torch.allclose(fit(x), y - fit.ridge * fit.alpha, atol=1e-9)  # (K + ridge I) alpha = y - c


@pytest.mark.parametrize("relevance", [None, torch.tensor([3.0, 2.0, 1.0, 0.5, 0.2, 0.0])])
def test_kernel_ridge_shapley_values_are_its_own(relevance):
    """The surrogate's closed-form Shapley values (product kernel with per-feature decays, size kernel) equal the
    enumeration formula applied to the fitted surrogate itself."""
    x, y = _data()
    fit = KernelRidge(x, y, relevance=relevance)
    assert torch.allclose(fit.shapley(), _enumerated_shapley(lambda z: float(fit(z.unsqueeze(0))[0]), 6),
                          rtol=1e-9, atol=1e-10)
