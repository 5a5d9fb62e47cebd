// attention_probs_reduced: schema (a fragment of the attnscope library) and CPU kernel.
// Core: cpp/src/attention_reduce.cpp (attnscope/attention_reduce.h). Wrapper: python/attnscope/ops/attention.py.
#include <torch/library.h>

#include "attnscope/attention_reduce.h"
#include "attnscope/no_autograd.h"
#include "kernels/attention.h"

namespace attnscope {

TORCH_LIBRARY_FRAGMENT(attnscope, m) {
  m.def(
      "attention_probs_reduced(Tensor q, Tensor k, Tensor? mask, float scale, bool is_causal, int window, "
      "float softcap, Tensor? sinks, int query_chunk, int[]? heads, str reduce, bool keep_weights, int topk, "
      "bool entropy, Tensor? value=None) -> (Tensor weights, Tensor topk_values, Tensor topk_indices, Tensor entropy, "
      "Tensor output)");
}

TORCH_LIBRARY_IMPL(attnscope, CPU, m) { m.impl("attention_probs_reduced", &kernels::attention_probs_reduced<&attention_probs_reduced>); }

TORCH_LIBRARY_IMPL(attnscope, Autograd, m) { m.impl("attention_probs_reduced", refuse_autograd()); }

}  // namespace attnscope
