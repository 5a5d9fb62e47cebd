// rollout on every non-CPU device, and as rollout_generic for tests. Core: cpp/src/generic/analysis.cpp.
#include "attnscope/generic/analysis.h"
#include "register.h"
#include "../ops/kernels/analysis.h"

namespace attnscope {

TORCH_LIBRARY_FRAGMENT(attnscope, m) {
  m.def("rollout_generic(Tensor attn, bool residual, int head_reduce, int[]? rows) -> Tensor");
}

ATTNSCOPE_REGISTER_GENERIC(rollout, kernels::rollout<&generic::rollout>)

}  // namespace attnscope
