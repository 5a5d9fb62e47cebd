"""Quadrature rules on [0, 1] for path attribution (integrated gradients); C++ core ``cpp/src/quadrature.cpp``,
schemas in ``cpp/ops/quadrature_rule.cpp``, ``composite_gauss_legendre.cpp``, ``refine_segments.cpp``.
All outputs are float64."""

from __future__ import annotations

import torch
from torch import Tensor

from .devices import check_one_device

__all__ = ["QUADRATURE_RULES", "composite_gauss_legendre", "quadrature_rule", "refine_segments"]

QUADRATURE_RULES = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")


def quadrature_rule(method: str, n: int) -> tuple[Tensor, Tensor]:
    """Points and weights of an ``n``-point rule on ``[0, 1]``.

    Args:
        method: one of ``QUADRATURE_RULES`` (the same layouts as Captum's ``approximation_parameters``).
        n: number of points (>= 1; >= 2 for ``riemann_trapezoid``).

    Returns:
        ``(alphas [n], weights [n])`` float64; ``weights.sum() == 1``.
    """
    if method not in QUADRATURE_RULES:
        raise ValueError(f"unknown integration method {method!r}; use one of {', '.join(QUADRATURE_RULES)}")
    return torch.ops.attnscope.quadrature_rule(method, int(n))


def composite_gauss_legendre(bounds: Tensor, order: int) -> tuple[Tensor, Tensor]:
    """Gauss-Legendre of ``order`` points on every segment of ``bounds`` ``[segments + 1]`` (float64, increasing).

    Returns ``(alphas, weights)``, each ``[segments * order]``, segment-major.
    """
    return torch.ops.attnscope.composite_gauss_legendre(bounds, int(order))


def refine_segments(bounds: Tensor, errors: Tensor, tolerance: float, max_new: int) -> Tensor:
    """Split the segments with the largest ``errors`` ``[segments]`` in halves until the unsplit errors sum to at
    most ``tolerance`` (at most ``max_new`` splits). Returns the new float64 ``bounds``."""
    return torch.ops.attnscope.refine_segments(bounds, errors, float(tolerance), int(max_new))


@torch.library.register_fake("attnscope::quadrature_rule")
def _quadrature_rule_fake(method, n):
    return torch.empty((n,), dtype=torch.float64), torch.empty((n,), dtype=torch.float64)


@torch.library.register_fake("attnscope::composite_gauss_legendre_generic")
@torch.library.register_fake("attnscope::composite_gauss_legendre")
def _composite_gauss_legendre_fake(bounds, order):
    n = (bounds.shape[0] - 1) * order
    return bounds.new_empty((n,), dtype=torch.float64), bounds.new_empty((n,), dtype=torch.float64)


@torch.library.register_fake("attnscope::refine_segments_generic")
@torch.library.register_fake("attnscope::refine_segments")
def _refine_segments_fake(bounds, errors, tolerance, max_new):
    check_one_device("refine_segments", bounds=bounds, errors=errors)
    ctx = torch.library.get_ctx()
    return bounds.new_empty((ctx.new_dynamic_size(),), dtype=torch.float64)
