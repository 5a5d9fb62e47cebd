// Quadrature rules on [0, 1] for path attribution (integrated gradients): the points alpha_i where the
// gradient is evaluated along the straight path baseline + alpha (input - baseline), and their weights.
//
// All rules return float64 tensors (alphas [n], weights [n]); sum(weights) == 1 for every rule.
// The points of every rule and the weights of riemann_left/right/middle and Gauss-Legendre are Captum's
// (`approximation_parameters`). riemann_trapezoid differs on purpose: Captum 0.9 weights it 1/n with halved ends,
// which sums to (n - 1) / n; here the steps are 1/(n - 1) with halved ends, so the weights sum to 1.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <utility>

namespace attnscope {

// n-point Gauss-Legendre nodes and weights mapped from [-1, 1] to [0, 1], nodes ascending.
// Newton iteration on P_n from Chebyshev-like starting points; exact for polynomials of degree <= 2n - 1.
std::pair<at::Tensor, at::Tensor> gauss_legendre(int64_t n);

// One of "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre".
// riemann_trapezoid needs n >= 2; every other rule needs n >= 1.
std::pair<at::Tensor, at::Tensor> quadrature_rule(const std::string& method, int64_t n);

// Composite Gauss-Legendre of `order` points on each segment [bounds[s], bounds[s + 1]] of a strictly
// increasing float64 `bounds` [segments + 1] inside [0, 1]. Returns alphas, weights [segments * order],
// segment-major (the points of segment s are rows s * order ... s * order + order - 1).
std::pair<at::Tensor, at::Tensor> composite_gauss_legendre(const at::Tensor& bounds, int64_t order);

// One refinement step of the adaptive schedule: given segment `bounds` [S + 1] and each segment's absolute
// completeness error `errors` [S] (|quadrature of the segment - (F(end) - F(start))|), split the segments
// with the largest errors in halves until the errors left unsplit sum to at most `tolerance`, splitting at
// most `max_new` segments. Returns the new bounds [S + k + 1] (k segments split, k <= max_new).
at::Tensor refine_segments(const at::Tensor& bounds, const at::Tensor& errors, double tolerance, int64_t max_new);

}  // namespace attnscope
