// attention_probs_reduced on every non-CPU device, and as attention_probs_reduced_generic for tests.
// Core: cpp/src/generic/attention.cpp.
#include "attnscope/generic/attention.h"
#include "attnscope/checks.h"
#include "register.h"

namespace attnscope {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> attention_probs_reduced_kernel(
    const at::Tensor& q, const at::Tensor& k, const std::optional<at::Tensor>& mask, double scale, bool is_causal,
    int64_t window, double softcap, const std::optional<at::Tensor>& sinks, int64_t query_chunk,
    at::OptionalIntArrayRef heads, c10::string_view reduce, bool keep_weights, int64_t topk, bool entropy,
    const std::optional<at::Tensor>& value) {
  const AttentionSpec spec{scale, is_causal, window, softcap, query_chunk};
  check_attention_probs_reduced(q, k, mask, spec, sinks, heads, std::string(reduce), topk, value);
  const ReduceSpec rs = make_reduce_spec(heads, std::string(reduce), keep_weights, topk, entropy);
  ReducedAttention r = generic::attention_probs_reduced(q, k, mask, spec, sinks, rs, value);
  return {r.weights, r.topk_values, r.topk_indices, r.entropy, r.output};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(attnscope, m) {
  m.def(
      "attention_probs_reduced_generic(Tensor q, Tensor k, Tensor? mask, float scale, bool is_causal, int window, "
      "float softcap, Tensor? sinks, int query_chunk, int[]? heads, str reduce, bool keep_weights, int topk, "
      "bool entropy, Tensor? value=None) -> (Tensor weights, Tensor topk_values, Tensor topk_indices, Tensor entropy, "
      "Tensor output)");
}

ATTNSCOPE_REGISTER_GENERIC(attention_probs_reduced, attention_probs_reduced_kernel)

}  // namespace attnscope
