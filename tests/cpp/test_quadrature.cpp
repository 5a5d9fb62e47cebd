// Quadrature rules against closed forms: polynomial exactness, symmetry, known 3-point nodes, Riemann layouts.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cmath>

#include "attnscope/quadrature.h"

namespace {

double integrate(const at::Tensor& a, const at::Tensor& w, int power) {
  return (a.pow(power) * w).sum().item<double>();
}

TEST(Quadrature, GaussLegendreExactForPolynomials) {
  for (int64_t n : {1, 2, 3, 7, 16, 64, 257}) {
    auto [a, w] = attnscope::gauss_legendre(n);
    ASSERT_EQ(a.size(0), n);
    for (int p = 0; p <= std::min<int64_t>(2 * n - 1, 40); ++p) {
      EXPECT_NEAR(integrate(a, w, p), 1.0 / (p + 1), 1e-13) << "n=" << n << " power=" << p;
    }
    EXPECT_TRUE(at::all(a.slice(0, 1) > a.slice(0, 0, n - 1)).item<bool>()) << "nodes ascend, n=" << n;
  }
}

TEST(Quadrature, GaussLegendreThreePointClosedForm) {
  auto [a, w] = attnscope::gauss_legendre(3);
  const double r = std::sqrt(3.0 / 5.0);
  EXPECT_NEAR(a[0].item<double>(), 0.5 * (1 - r), 1e-15);
  EXPECT_NEAR(a[1].item<double>(), 0.5, 1e-15);
  EXPECT_NEAR(w[0].item<double>(), 5.0 / 18.0, 1e-15);
  EXPECT_NEAR(w[1].item<double>(), 8.0 / 18.0, 1e-15);
}

TEST(Quadrature, RiemannRulesMatchCaptumLayout) {
  auto [l, wl] = attnscope::quadrature_rule("riemann_left", 4);
  EXPECT_TRUE(at::allclose(l, at::tensor({0.0, 0.25, 0.5, 0.75}, at::kDouble)));
  auto [r, wr] = attnscope::quadrature_rule("riemann_right", 4);
  EXPECT_TRUE(at::allclose(r, at::tensor({0.25, 0.5, 0.75, 1.0}, at::kDouble)));
  auto [m, wm] = attnscope::quadrature_rule("riemann_middle", 4);
  EXPECT_TRUE(at::allclose(m, at::tensor({0.125, 0.375, 0.625, 0.875}, at::kDouble)));
  auto [t, wt] = attnscope::quadrature_rule("riemann_trapezoid", 5);
  EXPECT_TRUE(at::allclose(wt, at::tensor({0.125, 0.25, 0.25, 0.25, 0.125}, at::kDouble)));
  for (const auto& w : {wl, wr, wm, wt}) EXPECT_NEAR(w.sum().item<double>(), 1.0, 1e-15);
}

TEST(Quadrature, BadArgumentsThrow) {
  EXPECT_THROW(attnscope::quadrature_rule("simpson", 4), c10::Error);
  EXPECT_THROW(attnscope::quadrature_rule("gausslegendre", 0), c10::Error);
  EXPECT_THROW(attnscope::quadrature_rule("riemann_trapezoid", 1), c10::Error);
  EXPECT_THROW(attnscope::composite_gauss_legendre(at::tensor({0.0, 0.5, 0.5}, at::kDouble), 2), c10::Error);
}

TEST(Quadrature, CompositeGaussLegendreIntegratesPiecewise) {
  at::Tensor bounds = at::tensor({0.0, 0.1, 0.5, 1.0}, at::kDouble);
  auto [a, w] = attnscope::composite_gauss_legendre(bounds, 3);
  ASSERT_EQ(a.size(0), 9);
  EXPECT_NEAR(w.sum().item<double>(), 1.0, 1e-15);
  EXPECT_NEAR(integrate(a, w, 5), 1.0 / 6.0, 1e-14);
  EXPECT_NEAR(w.slice(0, 0, 3).sum().item<double>(), 0.1, 1e-15);
}

TEST(Quadrature, RefineSplitsLargestErrorsFirst) {
  at::Tensor bounds = at::tensor({0.0, 0.5, 0.75, 1.0}, at::kDouble);
  at::Tensor errors = at::tensor({0.1, 1.0, 0.01}, at::kDouble);
  at::Tensor out = attnscope::refine_segments(bounds, errors, /*tolerance=*/0.2, /*max_new=*/8);
  // Splitting segment 1 leaves 0.11 <= 0.2: one new bound at 0.625.
  EXPECT_TRUE(at::allclose(out, at::tensor({0.0, 0.5, 0.625, 0.75, 1.0}, at::kDouble)));
  at::Tensor capped = attnscope::refine_segments(bounds, errors, /*tolerance=*/0.0, /*max_new=*/2);
  EXPECT_EQ(capped.size(0), 6);
  at::Tensor done = attnscope::refine_segments(bounds, errors, /*tolerance=*/2.0, /*max_new=*/8);
  EXPECT_TRUE(at::equal(done, bounds));
}

}  // namespace
