// composite_gauss_legendre: schema (a fragment of the attnscope library) and CPU kernel.
// Core: cpp/src/quadrature.cpp (attnscope/quadrature.h). Wrapper: python/attnscope/ops/quadrature.py.
#include <torch/library.h>

#include "attnscope/quadrature.h"
#include "attnscope/checks.h"
#include "attnscope/no_autograd.h"

namespace attnscope {
namespace {

std::tuple<at::Tensor, at::Tensor> composite_gauss_legendre_cpu(const at::Tensor& bounds, int64_t order) {
  check_composite_gauss_legendre(bounds, order);
  auto r = composite_gauss_legendre(bounds, order);
  return {r.first, r.second};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(attnscope, m) {
  m.def("composite_gauss_legendre(Tensor bounds, int order) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(attnscope, CPU, m) { m.impl("composite_gauss_legendre", &composite_gauss_legendre_cpu); }

TORCH_LIBRARY_IMPL(attnscope, Autograd, m) { m.impl("composite_gauss_legendre", refuse_autograd()); }

}  // namespace attnscope
