// CPU kernels of rollout and attention_flow: unpack the schema's arguments and call the core.
#include <torch/library.h>

#include "attnscope/attention_flow.h"
#include "attnscope/rollout.h"

namespace attnscope {
namespace {

at::Tensor rollout_cpu(const at::Tensor& attn, bool residual, int64_t head_reduce, at::OptionalIntArrayRef rows) {
  return rollout(attn, residual, head_reduce_from_int(head_reduce), rows);
}

at::Tensor attention_flow_cpu(const at::Tensor& attn, bool residual, int64_t head_reduce,
                              at::OptionalIntArrayRef rows, bool normalize) {
  return attention_flow(attn, residual, head_reduce_from_int(head_reduce), rows, normalize);
}

}  // namespace

TORCH_LIBRARY_IMPL(attnscope, CPU, m) {
  m.impl("rollout", &rollout_cpu);
  m.impl("attention_flow", &attention_flow_cpu);
}

}  // namespace attnscope
