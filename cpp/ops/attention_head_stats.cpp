// attention_head_stats: schema (a fragment of the attnscope library) and CPU kernel.
// Core: cpp/src/head_stats.cpp (attnscope/head_stats.h). Wrapper: python/attnscope/ops/attention.py.
#include <torch/library.h>

#include "attnscope/head_stats.h"
#include "attnscope/checks.h"
#include "attnscope/no_autograd.h"

namespace attnscope {
namespace {

std::tuple<at::Tensor, at::Tensor> attention_head_stats_cpu(
    const at::Tensor& q, const at::Tensor& k, const std::optional<at::Tensor>& mask, double scale, bool is_causal,
    int64_t window, double softcap, const std::optional<at::Tensor>& sinks, int64_t query_chunk,
    const std::optional<at::Tensor>& input_ids, const std::optional<at::Tensor>& valid, int64_t induction_period) {
  const AttentionSpec spec{scale, is_causal, window, softcap, query_chunk};
  check_attention_head_stats(q, k, mask, spec, sinks, input_ids, valid, induction_period);
  HeadStatSums r = attention_head_stats(q, k, mask, spec, sinks, input_ids, valid, induction_period);
  return {r.sums, r.counts};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(attnscope, m) {
  m.def(
      "attention_head_stats(Tensor q, Tensor k, Tensor? mask, float scale, bool is_causal, int window, "
      "float softcap, Tensor? sinks, int query_chunk, Tensor? input_ids, Tensor? valid, int induction_period) "
      "-> (Tensor sums, Tensor counts)");
}

TORCH_LIBRARY_IMPL(attnscope, CPU, m) { m.impl("attention_head_stats", &attention_head_stats_cpu); }

TORCH_LIBRARY_IMPL(attnscope, Autograd, m) { m.impl("attention_head_stats", refuse_autograd()); }

}  // namespace attnscope
