// attention_head_stats on every non-CPU device, and as attention_head_stats_generic for tests.
// Core: cpp/src/generic/attention.cpp.
#include "attnscope/generic/attention.h"
#include "attnscope/checks.h"
#include "register.h"

namespace attnscope {
namespace {

std::tuple<at::Tensor, at::Tensor> attention_head_stats_kernel(
    const at::Tensor& q, const at::Tensor& k, const std::optional<at::Tensor>& mask, double scale, bool is_causal,
    int64_t window, double softcap, const std::optional<at::Tensor>& sinks, int64_t query_chunk,
    const std::optional<at::Tensor>& input_ids, const std::optional<at::Tensor>& valid, int64_t induction_period) {
  const AttentionSpec spec{scale, is_causal, window, softcap, query_chunk};
  check_attention_head_stats(q, k, mask, spec, sinks, input_ids, valid, induction_period);
  HeadStatSums r = generic::attention_head_stats(q, k, mask, spec, sinks, input_ids, valid, induction_period);
  return {r.sums, r.counts};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(attnscope, m) {
  m.def(
      "attention_head_stats_generic(Tensor q, Tensor k, Tensor? mask, float scale, bool is_causal, int window, "
      "float softcap, Tensor? sinks, int query_chunk, Tensor? input_ids, Tensor? valid, int induction_period) "
      "-> (Tensor sums, Tensor counts)");
}

ATTNSCOPE_REGISTER_GENERIC(attention_head_stats, attention_head_stats_kernel)

}  // namespace attnscope
