// attention_head_stats: schema (a fragment of the attnscope library) and CPU kernel.
// Core: cpp/src/head_stats.cpp (attnscope/head_stats.h). Wrapper: python/attnscope/ops/attention.py.
#include <torch/library.h>

#include "attnscope/head_stats.h"
#include "attnscope/no_autograd.h"
#include "kernels/attention.h"

namespace attnscope {

TORCH_LIBRARY_FRAGMENT(attnscope, m) {
  m.def(
      "attention_head_stats(Tensor q, Tensor k, Tensor? mask, float scale, bool is_causal, int window, "
      "float softcap, Tensor? sinks, int query_chunk, Tensor? input_ids, Tensor? valid, int induction_period) "
      "-> (Tensor sums, Tensor counts)");
}

TORCH_LIBRARY_IMPL(attnscope, CPU, m) { m.impl("attention_head_stats", &kernels::attention_head_stats<&attention_head_stats>); }

TORCH_LIBRARY_IMPL(attnscope, Autograd, m) { m.impl("attention_head_stats", refuse_autograd()); }

}  // namespace attnscope
