// attention_probs and its backward: schemas (a fragment of the attnscope library) and CPU kernels.
// Core: cpp/src/attention_probs.cpp, prob_rows.h, row_kernels.cpp (attnscope/attention_probs.h). Wrapper and autograd:
// python/attnscope/ops/attention.py.
#include <torch/library.h>

#include "attnscope/attention_probs.h"
#include "attnscope/no_autograd.h"
#include "kernels/attention.h"

namespace attnscope {

TORCH_LIBRARY_FRAGMENT(attnscope, m) {
  m.def(
      "attention_probs(Tensor q, Tensor k, Tensor? mask, float scale, bool is_causal, int window, float softcap, "
      "Tensor? sinks, int query_chunk) -> Tensor");
  m.def(
      "attention_probs_backward(Tensor grad, Tensor probs, Tensor q, Tensor k, float scale, float softcap, "
      "Tensor? sinks, int query_chunk) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(attnscope, CPU, m) {
  m.impl("attention_probs", &kernels::attention_probs<&attention_probs>);
  m.impl("attention_probs_backward", &kernels::attention_probs_backward<&attention_probs_backward>);
}

// The backward has no backward of its own (no double backward); attention_probs' autograd is in Python.
TORCH_LIBRARY_IMPL(attnscope, Autograd, m) { m.impl("attention_probs_backward", refuse_autograd()); }

}  // namespace attnscope
