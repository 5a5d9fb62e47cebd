// refine_segments: schema (a fragment of the attnscope library) and CPU kernel.
// Core: cpp/src/quadrature.cpp (attnscope/quadrature.h). Wrapper: python/attnscope/ops/quadrature.py.
#include <torch/library.h>

#include "attnscope/checks.h"
#include "attnscope/no_autograd.h"
#include "attnscope/quadrature.h"

namespace attnscope {
namespace {

at::Tensor refine_segments_cpu(const at::Tensor& bounds, const at::Tensor& errors, double tolerance,
                               int64_t max_new) {
  check_refine_segments(bounds, errors, tolerance, max_new);
  return refine_segments(bounds, errors, tolerance, max_new);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(attnscope, m) {
  m.def("refine_segments(Tensor bounds, Tensor errors, float tolerance, int max_new) -> Tensor");
}

TORCH_LIBRARY_IMPL(attnscope, CPU, m) { m.impl("refine_segments", &refine_segments_cpu); }

TORCH_LIBRARY_IMPL(attnscope, Autograd, m) { m.impl("refine_segments", refuse_autograd()); }

}  // namespace attnscope
