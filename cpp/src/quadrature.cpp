// Quadrature rules for path attribution; see quadrature.h.
#include "attnscope/quadrature.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace attnscope {
namespace {

constexpr double kPi = 3.14159265358979323846;

at::Tensor from_vector(const std::vector<double>& v) {
  at::Tensor t = at::empty({static_cast<int64_t>(v.size())}, at::TensorOptions().dtype(at::kDouble));
  std::copy(v.begin(), v.end(), t.data_ptr<double>());
  return t;
}

// Evenly spaced points start, start + step, ... (n of them), the same values numpy's linspace gives.
std::vector<double> linspace(double start, double stop, int64_t n) {
  std::vector<double> out(static_cast<size_t>(n));
  if (n == 1) {
    out[0] = start;
    return out;
  }
  const double step = (stop - start) / static_cast<double>(n - 1);
  for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = start + static_cast<double>(i) * step;
  out[static_cast<size_t>(n - 1)] = stop;
  return out;
}

}  // namespace

std::pair<at::Tensor, at::Tensor> gauss_legendre(int64_t n) {
  TORCH_CHECK(n >= 1, "gauss_legendre needs n >= 1 points, got n = ", n);
  std::vector<double> x(static_cast<size_t>(n)), w(static_cast<size_t>(n));
  // Roots are symmetric about 0: solve for the upper half and mirror.
  const int64_t half = (n + 1) / 2;
  for (int64_t i = 0; i < half; ++i) {
    double z = std::cos(kPi * (static_cast<double>(i) + 0.75) / (static_cast<double>(n) + 0.5));
    double dp = 0.0;
    for (int iter = 0; iter < 100; ++iter) {
      // Three-term recurrence for P_n(z) and its derivative.
      double p0 = 1.0, p1 = z;
      for (int64_t k = 2; k <= n; ++k) {
        const double p2 = ((2.0 * static_cast<double>(k) - 1.0) * z * p1 - (static_cast<double>(k) - 1.0) * p0) /
                          static_cast<double>(k);
        p0 = p1;
        p1 = p2;
      }
      const double pn = n == 1 ? z : p1;
      const double pn1 = n == 1 ? 1.0 : p0;
      dp = static_cast<double>(n) * (z * pn - pn1) / (z * z - 1.0);
      const double dz = pn / dp;
      z -= dz;
      if (std::abs(dz) < 1e-16) break;
    }
    // Recompute the derivative at the converged root for the weight.
    double p0 = 1.0, p1 = z;
    for (int64_t k = 2; k <= n; ++k) {
      const double p2 =
          ((2.0 * static_cast<double>(k) - 1.0) * z * p1 - (static_cast<double>(k) - 1.0) * p0) / static_cast<double>(k);
      p0 = p1;
      p1 = p2;
    }
    dp = n == 1 ? 1.0 : static_cast<double>(n) * (z * p1 - p0) / (z * z - 1.0);
    const double weight = 2.0 / ((1.0 - z * z) * dp * dp);
    // z is the i-th largest root; ascending order puts it at n - 1 - i and its mirror at i.
    x[static_cast<size_t>(n - 1 - i)] = z;
    x[static_cast<size_t>(i)] = -z;
    w[static_cast<size_t>(n - 1 - i)] = weight;
    w[static_cast<size_t>(i)] = weight;
  }
  if (n % 2 == 1) x[static_cast<size_t>(n / 2)] = 0.0;
  // Map [-1, 1] -> [0, 1] as Captum does: alpha = (1 + x) / 2, weight = w / 2.
  for (int64_t i = 0; i < n; ++i) {
    x[static_cast<size_t>(i)] = 0.5 * (1.0 + x[static_cast<size_t>(i)]);
    w[static_cast<size_t>(i)] = 0.5 * w[static_cast<size_t>(i)];
  }
  return {from_vector(x), from_vector(w)};
}

std::pair<at::Tensor, at::Tensor> quadrature_rule(const std::string& method, int64_t n) {
  const double dn = static_cast<double>(n);
  if (method == "gausslegendre") return gauss_legendre(n);
  if (method == "riemann_left" || method == "riemann_right" || method == "riemann_middle") {
    TORCH_CHECK(n >= 1, method, " needs n_steps >= 1, got ", n);
    std::vector<double> w(static_cast<size_t>(n), 1.0 / dn);
    std::vector<double> a;
    if (method == "riemann_left") a = linspace(0.0, 1.0 - 1.0 / dn, n);
    if (method == "riemann_right") a = linspace(1.0 / dn, 1.0, n);
    if (method == "riemann_middle") a = linspace(1.0 / (2.0 * dn), 1.0 - 1.0 / (2.0 * dn), n);
    return {from_vector(a), from_vector(w)};
  }
  if (method == "riemann_trapezoid") {
    TORCH_CHECK(n >= 2, "riemann_trapezoid needs n_steps >= 2 (both end points), got ", n);
    std::vector<double> w(static_cast<size_t>(n), 1.0 / (dn - 1.0));
    w.front() = w.back() = 1.0 / (2.0 * (dn - 1.0));
    return {from_vector(linspace(0.0, 1.0, n)), from_vector(w)};
  }
  TORCH_CHECK(false, "unknown quadrature rule '", method,
              "'; use one of riemann_left, riemann_right, riemann_middle, riemann_trapezoid, gausslegendre");
}

std::pair<at::Tensor, at::Tensor> composite_gauss_legendre(const at::Tensor& bounds, int64_t order) {
  TORCH_CHECK(bounds.dim() == 1 && bounds.size(0) >= 2, "bounds must be 1-D with at least 2 entries, got shape ",
              bounds.sizes());
  TORCH_CHECK(order >= 1, "order must be >= 1, got ", order);
  at::Tensor b = bounds.to(at::kDouble).contiguous();
  const int64_t segments = b.size(0) - 1;
  auto rule = gauss_legendre(order);
  const double* bp = b.data_ptr<double>();
  const double* xp = rule.first.data_ptr<double>();
  const double* wp = rule.second.data_ptr<double>();
  at::Tensor alphas = at::empty({segments * order}, b.options());
  at::Tensor weights = at::empty({segments * order}, b.options());
  double* ap = alphas.data_ptr<double>();
  double* op = weights.data_ptr<double>();
  for (int64_t s = 0; s < segments; ++s) {
    const double lo = bp[s], width = bp[s + 1] - bp[s];
    TORCH_CHECK(width > 0.0, "bounds must be strictly increasing, got bounds[", s, "] = ", lo, " >= bounds[", s + 1,
                "] = ", bp[s + 1]);
    for (int64_t i = 0; i < order; ++i) {
      ap[s * order + i] = lo + width * xp[i];
      op[s * order + i] = width * wp[i];
    }
  }
  return {alphas, weights};
}

at::Tensor refine_segments(const at::Tensor& bounds, const at::Tensor& errors, double tolerance, int64_t max_new) {
  TORCH_CHECK(bounds.dim() == 1 && bounds.size(0) >= 2, "bounds must be 1-D with at least 2 entries, got shape ",
              bounds.sizes());
  TORCH_CHECK(errors.dim() == 1 && errors.size(0) == bounds.size(0) - 1, "errors must be [", bounds.size(0) - 1,
              "] (one per segment), got shape ", errors.sizes());
  TORCH_CHECK(max_new >= 0, "max_new must be >= 0, got ", max_new);
  at::Tensor b = bounds.to(at::kDouble).contiguous();
  at::Tensor e = errors.to(at::kDouble).abs().contiguous();
  const int64_t segments = e.size(0);
  const double* bp = b.data_ptr<double>();
  const double* ep = e.data_ptr<double>();
  std::vector<int64_t> order(static_cast<size_t>(segments));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t i, int64_t j) { return ep[i] > ep[j]; });
  double left = std::accumulate(ep, ep + segments, 0.0);
  std::vector<char> split(static_cast<size_t>(segments), 0);
  int64_t n_split = 0;
  for (int64_t idx : order) {
    if (left <= tolerance || n_split >= max_new) break;
    split[static_cast<size_t>(idx)] = 1;
    left -= ep[idx];
    ++n_split;
  }
  std::vector<double> out;
  out.reserve(static_cast<size_t>(segments + n_split + 1));
  for (int64_t s = 0; s < segments; ++s) {
    out.push_back(bp[s]);
    if (split[static_cast<size_t>(s)]) out.push_back(0.5 * (bp[s] + bp[s + 1]));
  }
  out.push_back(bp[segments]);
  return from_vector(out);
}

}  // namespace attnscope
