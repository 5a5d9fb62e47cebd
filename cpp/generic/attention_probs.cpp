// attention_probs and its backward on every non-CPU device, and as attention_probs_generic(_backward) for tests.
// Core: cpp/src/generic/attention.cpp. Autograd of the _generic op: python/attnscope/ops/attention.py.
#include "attnscope/generic/attention.h"
#include "register.h"
#include "../ops/kernels/attention.h"

namespace attnscope {

TORCH_LIBRARY_FRAGMENT(attnscope, m) {
  m.def(
      "attention_probs_generic(Tensor q, Tensor k, Tensor? mask, float scale, bool is_causal, int window, "
      "float softcap, Tensor? sinks, int query_chunk) -> Tensor");
  m.def(
      "attention_probs_backward_generic(Tensor grad, Tensor probs, Tensor q, Tensor k, float scale, float softcap, "
      "Tensor? sinks, int query_chunk) -> (Tensor, Tensor, Tensor)");
}

ATTNSCOPE_REGISTER_GENERIC(attention_probs, kernels::attention_probs<&generic::attention_probs>)
ATTNSCOPE_REGISTER_GENERIC(attention_probs_backward, kernels::attention_probs_backward<&generic::attention_probs_backward>)

}  // namespace attnscope
