// attention_head_stats on every non-CPU device, and as attention_head_stats_generic for tests.
// Core: cpp/src/generic/attention.cpp.
#include "attnscope/generic/attention.h"
#include "register.h"
#include "../ops/kernels/attention.h"

namespace attnscope {

TORCH_LIBRARY_FRAGMENT(attnscope, m) {
  m.def(
      "attention_head_stats_generic(Tensor q, Tensor k, Tensor? mask, float scale, bool is_causal, int window, "
      "float softcap, Tensor? sinks, int query_chunk, Tensor? input_ids, Tensor? valid, int induction_period) "
      "-> (Tensor sums, Tensor counts)");
}

ATTNSCOPE_REGISTER_GENERIC(attention_head_stats, kernels::attention_head_stats<&generic::attention_head_stats>)

}  // namespace attnscope
