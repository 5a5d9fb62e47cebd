// attention_flow: schema (a fragment of the attnscope library) and CPU kernel.
// Core: cpp/src/attention_flow.cpp, maxflow.cpp (attnscope/attention_flow.h).
// Wrapper: python/attnscope/ops/analysis.py.
#include <torch/library.h>

#include "attnscope/attention_flow.h"
#include "attnscope/no_autograd.h"
#include "kernels/analysis.h"

namespace attnscope {

TORCH_LIBRARY_FRAGMENT(attnscope, m) {
  m.def("attention_flow(Tensor attn, bool residual, int head_reduce, int[]? rows, bool normalize) -> Tensor");
}

TORCH_LIBRARY_IMPL(attnscope, CPU, m) { m.impl("attention_flow", &kernels::attention_flow<&attention_flow>); }

TORCH_LIBRARY_IMPL(attnscope, Autograd, m) { m.impl("attention_flow", refuse_autograd()); }

}  // namespace attnscope
