"""The quadrature ops against numpy and Captum, plus torch.library.opcheck."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnscope import ops


@pytest.mark.parametrize("n", [1, 2, 5, 32, 100])
def test_gauss_legendre_matches_numpy_and_captum(n):
    alphas, weights = ops.quadrature_rule("gausslegendre", n)
    x, w = np.polynomial.legendre.leggauss(n)
    np.testing.assert_allclose(alphas.numpy(), 0.5 * (x + 1), atol=1e-14)
    np.testing.assert_allclose(weights.numpy(), 0.5 * w, atol=1e-14)
    approx = pytest.importorskip("captum.attr._utils.approximation_methods")
    step_sizes, alpha_fn = approx.approximation_parameters("gausslegendre")
    np.testing.assert_allclose(alphas.numpy(), alpha_fn(n), atol=1e-12)
    np.testing.assert_allclose(weights.numpy(), step_sizes(n), atol=1e-12)


@pytest.mark.parametrize("method", ["riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"])
def test_riemann_points_match_captum(method):
    approx = pytest.importorskip("captum.attr._utils.approximation_methods")
    step_sizes, alpha_fn = approx.approximation_parameters(method)
    alphas, weights = ops.quadrature_rule(method, 9)
    np.testing.assert_allclose(alphas.numpy(), alpha_fn(9), atol=1e-7)  # Captum builds them in float32
    expected = np.asarray(step_sizes(9))
    if method == "riemann_trapezoid":
        expected = expected * 9 / 8  # Captum's trapezoid weights sum to (n - 1) / n; ours to 1
    np.testing.assert_allclose(weights.numpy(), expected, atol=1e-12)
    assert weights.sum().item() == pytest.approx(1.0, abs=1e-14)


def test_bad_rule_and_sizes_raise():
    with pytest.raises(ValueError, match="riemann_left, .*gausslegendre"):
        ops.quadrature_rule("simpson", 4)
    with pytest.raises(ValueError, match="n >= 1"):
        ops.quadrature_rule("gausslegendre", 0)
    with pytest.raises(ValueError, match="strictly increasing"):
        ops.composite_gauss_legendre(torch.tensor([0.0, 0.5, 0.5], dtype=torch.float64), 3)


def test_composite_and_refine():
    bounds = torch.tensor([0.0, 0.25, 1.0], dtype=torch.float64)
    a, w = ops.composite_gauss_legendre(bounds, 4)
    assert float((a**7 * w).sum()) == pytest.approx(1 / 8, abs=1e-14)
    new = ops.refine_segments(bounds, torch.tensor([0.1, 0.5], dtype=torch.float64), 0.2, 4)
    assert new.tolist() == [0.0, 0.25, 0.625, 1.0]


def test_opcheck():
    bounds = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    torch.library.opcheck(torch.ops.attnscope.composite_gauss_legendre.default, (bounds, 3))
    torch.library.opcheck(torch.ops.attnscope.quadrature_rule.default, ("gausslegendre", 5),
                          test_utils=("test_schema", "test_faketensor"))
    # refine_segments has a data-dependent output size: its fake kernel asks for a dynamic size.
    torch.library.opcheck(torch.ops.attnscope.refine_segments.default,
                          (bounds, torch.tensor([0.5, 0.1], dtype=torch.float64), 0.2, 4), test_utils=("test_schema",))
