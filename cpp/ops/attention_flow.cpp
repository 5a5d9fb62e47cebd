// attention_flow: schema (a fragment of the attnscope library) and CPU kernel.
// Core: cpp/src/attention_flow.cpp, maxflow.cpp (attnscope/attention_flow.h).
// Wrapper: python/attnscope/ops/analysis.py.
#include <torch/library.h>

#include "attnscope/attention_flow.h"
#include "attnscope/checks.h"
#include "attnscope/no_autograd.h"

namespace attnscope {
namespace {

at::Tensor attention_flow_cpu(const at::Tensor& attn, bool residual, int64_t head_reduce,
                              at::OptionalIntArrayRef rows, bool normalize) {
  check_attention_flow(attn, head_reduce, rows);
  return attention_flow(attn, residual, head_reduce_from_int(head_reduce), rows, normalize);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(attnscope, m) {
  m.def("attention_flow(Tensor attn, bool residual, int head_reduce, int[]? rows, bool normalize) -> Tensor");
}

TORCH_LIBRARY_IMPL(attnscope, CPU, m) { m.impl("attention_flow", &attention_flow_cpu); }

TORCH_LIBRARY_IMPL(attnscope, Autograd, m) { m.impl("attention_flow", refuse_autograd()); }

}  // namespace attnscope
