// CPU kernels of attention_probs and its backward: unpack the schema's arguments and call the core.
#include <torch/library.h>

#include "attnscope/attention_probs.h"
#include "attnscope/attention_reduce.h"

namespace attnscope {
namespace {

at::Tensor attention_probs_cpu(const at::Tensor& q, const at::Tensor& k, const std::optional<at::Tensor>& mask,
                               double scale, bool is_causal, int64_t window, double softcap,
                               const std::optional<at::Tensor>& sinks, int64_t query_chunk) {
  return attention_probs(q, k, mask, AttentionSpec{scale, is_causal, window, softcap, query_chunk}, sinks);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> attention_probs_backward_cpu(
    const at::Tensor& grad, const at::Tensor& probs, const at::Tensor& q, const at::Tensor& k, double scale,
    double softcap, const std::optional<at::Tensor>& sinks, int64_t query_chunk) {
  return attention_probs_backward(grad, probs, q, k,
                                  AttentionSpec{scale, /*is_causal=*/false, /*window=*/0, softcap, query_chunk}, sinks);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> attention_probs_reduced_cpu(
    const at::Tensor& q, const at::Tensor& k, const std::optional<at::Tensor>& mask, double scale, bool is_causal,
    int64_t window, double softcap, const std::optional<at::Tensor>& sinks, int64_t query_chunk,
    at::OptionalIntArrayRef heads, c10::string_view reduce, bool keep_weights, int64_t topk, bool entropy) {
  ReduceSpec rs;
  if (heads) rs.heads.assign(heads->begin(), heads->end());
  rs.reduce = parse_head_reduce(std::string(reduce));
  rs.keep_weights = keep_weights;
  rs.topk = topk;
  rs.entropy = entropy;
  ReducedAttention r =
      attention_probs_reduced(q, k, mask, AttentionSpec{scale, is_causal, window, softcap, query_chunk}, sinks, rs);
  return {r.weights, r.topk_values, r.topk_indices, r.entropy};
}

}  // namespace

TORCH_LIBRARY_IMPL(attnscope, CPU, m) {
  m.impl("attention_probs", &attention_probs_cpu);
  m.impl("attention_probs_backward", &attention_probs_backward_cpu);
  m.impl("attention_probs_reduced", &attention_probs_reduced_cpu);
}

}  // namespace attnscope
