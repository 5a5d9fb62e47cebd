// attention_probs_reduced on every non-CPU device, and as attention_probs_reduced_generic for tests.
// Core: cpp/src/generic/attention.cpp.
#include "attnscope/generic/attention.h"
#include "register.h"
#include "../ops/kernels/attention.h"

namespace attnscope {

TORCH_LIBRARY_FRAGMENT(attnscope, m) {
  m.def(
      "attention_probs_reduced_generic(Tensor q, Tensor k, Tensor? mask, float scale, bool is_causal, int window, "
      "float softcap, Tensor? sinks, int query_chunk, int[]? heads, str reduce, bool keep_weights, int topk, "
      "bool entropy, Tensor? value=None) -> (Tensor weights, Tensor topk_values, Tensor topk_indices, Tensor entropy, "
      "Tensor output)");
}

ATTNSCOPE_REGISTER_GENERIC(attention_probs_reduced, kernels::attention_probs_reduced<&generic::attention_probs_reduced>)

}  // namespace attnscope
