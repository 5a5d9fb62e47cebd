// rollout on every non-CPU device, and as rollout_generic for tests. Core: cpp/src/generic/analysis.cpp.
#include "attnscope/generic/analysis.h"
#include "attnscope/checks.h"
#include "register.h"

namespace attnscope {
namespace {

at::Tensor rollout_kernel(const at::Tensor& attn, bool residual, int64_t head_reduce, at::OptionalIntArrayRef rows) {
  check_rollout(attn, head_reduce, rows);
  return generic::rollout(attn, residual, head_reduce_from_int(head_reduce), rows);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(attnscope, m) {
  m.def("rollout_generic(Tensor attn, bool residual, int head_reduce, int[]? rows) -> Tensor");
}

ATTNSCOPE_REGISTER_GENERIC(rollout, rollout_kernel)

}  // namespace attnscope
