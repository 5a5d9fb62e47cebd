// composite_gauss_legendre and refine_segments on every non-CPU device (a CPU copy of a few dozen scalars, result
// on the input's device), and as *_generic for tests. quadrature_rule takes no tensor and is already registered for
// every backend. Core: cpp/src/generic/analysis.cpp.
#include "attnscope/generic/analysis.h"
#include "attnscope/checks.h"
#include "register.h"

namespace attnscope {
namespace {

std::tuple<at::Tensor, at::Tensor> composite_gauss_legendre_kernel(const at::Tensor& bounds, int64_t order) {
  check_composite_gauss_legendre(bounds, order);
  auto r = generic::composite_gauss_legendre(bounds, order);
  return {r.first, r.second};
}

at::Tensor refine_segments_kernel(const at::Tensor& bounds, const at::Tensor& errors, double tolerance,
                                  int64_t max_new) {
  check_refine_segments(bounds, errors, tolerance, max_new);
  return generic::refine_segments(bounds, errors, tolerance, max_new);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(attnscope, m) {
  m.def("composite_gauss_legendre_generic(Tensor bounds, int order) -> (Tensor, Tensor)");
  m.def("refine_segments_generic(Tensor bounds, Tensor errors, float tolerance, int max_new) -> Tensor");
}

ATTNSCOPE_REGISTER_GENERIC(composite_gauss_legendre, composite_gauss_legendre_kernel)
ATTNSCOPE_REGISTER_GENERIC(refine_segments, refine_segments_kernel)

}  // namespace attnscope
