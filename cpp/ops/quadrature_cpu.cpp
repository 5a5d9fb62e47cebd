// Quadrature ops for path attribution: schemas (a fragment of the attnscope library, so registration.cpp stays
// untouched) and their kernels. quadrature_rule takes no tensor, so it is registered for every backend at once.
#include <torch/library.h>

#include "attnscope/quadrature.h"

namespace attnscope {
namespace {

std::tuple<at::Tensor, at::Tensor> quadrature_rule_op(c10::string_view method, int64_t n) {
  auto r = quadrature_rule(std::string(method), n);
  return {r.first, r.second};
}

std::tuple<at::Tensor, at::Tensor> composite_gauss_legendre_op(const at::Tensor& bounds, int64_t order) {
  auto r = composite_gauss_legendre(bounds, order);
  return {r.first, r.second};
}

at::Tensor refine_segments_op(const at::Tensor& bounds, const at::Tensor& errors, double tolerance,
                              int64_t max_new) {
  return refine_segments(bounds, errors, tolerance, max_new);
}

}  // namespace

TORCH_LIBRARY_IMPL(attnscope, CompositeExplicitAutograd, m) {
  m.impl("quadrature_rule", &quadrature_rule_op);
}

TORCH_LIBRARY_IMPL(attnscope, CPU, m) {
  m.impl("composite_gauss_legendre", &composite_gauss_legendre_op);
  m.impl("refine_segments", &refine_segments_op);
}

}  // namespace attnscope
