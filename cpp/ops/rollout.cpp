// rollout: schema (a fragment of the attnscope library) and CPU kernel.
// Core: cpp/src/rollout.cpp (attnscope/rollout.h). Wrapper: python/attnscope/ops/analysis.py.
#include <torch/library.h>

#include "attnscope/rollout.h"
#include "attnscope/checks.h"
#include "attnscope/no_autograd.h"

namespace attnscope {
namespace {

at::Tensor rollout_cpu(const at::Tensor& attn, bool residual, int64_t head_reduce, at::OptionalIntArrayRef rows) {
  check_rollout(attn, head_reduce, rows);
  return rollout(attn, residual, head_reduce_from_int(head_reduce), rows);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(attnscope, m) {
  m.def("rollout(Tensor attn, bool residual, int head_reduce, int[]? rows) -> Tensor");
}

TORCH_LIBRARY_IMPL(attnscope, CPU, m) { m.impl("rollout", &rollout_cpu); }

TORCH_LIBRARY_IMPL(attnscope, Autograd, m) { m.impl("rollout", refuse_autograd()); }

}  // namespace attnscope
