// rollout: schema (a fragment of the attnscope library) and CPU kernel.
// Core: cpp/src/rollout.cpp (attnscope/rollout.h). Wrapper: python/attnscope/ops/analysis.py.
#include <torch/library.h>

#include "attnscope/rollout.h"
#include "attnscope/no_autograd.h"
#include "kernels/analysis.h"

namespace attnscope {

TORCH_LIBRARY_FRAGMENT(attnscope, m) {
  m.def("rollout(Tensor attn, bool residual, int head_reduce, int[]? rows) -> Tensor");
}

TORCH_LIBRARY_IMPL(attnscope, CPU, m) { m.impl("rollout", &kernels::rollout<&rollout>); }

TORCH_LIBRARY_IMPL(attnscope, Autograd, m) { m.impl("rollout", refuse_autograd()); }

}  // namespace attnscope
