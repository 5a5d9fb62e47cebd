// refine_segments: schema (a fragment of the attnscope library) and CPU kernel.
// Core: cpp/src/quadrature.cpp (attnscope/quadrature.h). Wrapper: python/attnscope/ops/quadrature.py.
#include <torch/library.h>

#include "attnscope/quadrature.h"

TORCH_LIBRARY_FRAGMENT(attnscope, m) {
  m.def("refine_segments(Tensor bounds, Tensor errors, float tolerance, int max_new) -> Tensor");
}

TORCH_LIBRARY_IMPL(attnscope, CPU, m) { m.impl("refine_segments", &attnscope::refine_segments); }
