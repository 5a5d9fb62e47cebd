// attention_flow on every non-CPU device (max-flow on a CPU copy, result on the input's device), and as
// attention_flow_generic for tests. Core: cpp/src/generic/analysis.cpp.
#include "attnscope/generic/analysis.h"
#include "attnscope/checks.h"
#include "register.h"

namespace attnscope {
namespace {

at::Tensor attention_flow_kernel(const at::Tensor& attn, bool residual, int64_t head_reduce,
                                 at::OptionalIntArrayRef rows, bool normalize) {
  check_attention_flow(attn, head_reduce, rows);
  return generic::attention_flow(attn, residual, head_reduce_from_int(head_reduce), rows, normalize);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(attnscope, m) {
  m.def("attention_flow_generic(Tensor attn, bool residual, int head_reduce, int[]? rows, bool normalize) -> Tensor");
}

ATTNSCOPE_REGISTER_GENERIC(attention_flow, attention_flow_kernel)

}  // namespace attnscope
