// The attention ops' kernels up to their cores: each unpacks its schema's arguments (the mask and spec into an
// AttentionSpec), checks them at the door (attnscope/checks.h) and calls a core. One template per op takes the core
// as a parameter: the CPU kernel (cpp/ops/<op>.cpp) instantiates it with the CPU core, the device-generic one
// (cpp/generic/<op>.cpp) with the generic core, so the two registrations cannot drift apart. The other areas'
// kernels (analysis.h, neurons.h) follow the same pattern; they are separate headers because their cores' headers
// cannot be included together (two HeadReduce enums).
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <string>
#include <tuple>

#include "attnscope/checks.h"
#include "attnscope/attention_probs.h"
#include "attnscope/attention_reduce.h"
#include "attnscope/head_stats.h"
#include "attnscope/relevance.h"

namespace attnscope {
namespace kernels {

template <auto Core>
at::Tensor attention_probs(const at::Tensor& q, const at::Tensor& k, const std::optional<at::Tensor>& mask,
                           double scale, bool is_causal, int64_t window, double softcap,
                           const std::optional<at::Tensor>& sinks, int64_t query_chunk) {
  const AttentionSpec spec{scale, is_causal, window, softcap, query_chunk};
  check_attention_probs(q, k, mask, spec, sinks);
  return Core(q, k, mask, spec, sinks);
}

template <auto Core>
std::tuple<at::Tensor, at::Tensor, at::Tensor> attention_probs_backward(
    const at::Tensor& grad, const at::Tensor& probs, const at::Tensor& q, const at::Tensor& k, double scale,
    double softcap, const std::optional<at::Tensor>& sinks, int64_t query_chunk) {
  const AttentionSpec spec{scale, /*is_causal=*/false, /*window=*/0, softcap, query_chunk};
  check_attention_probs_backward(grad, probs, q, k, spec, sinks);
  return Core(grad, probs, q, k, spec, sinks);
}

template <auto Core>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> attention_probs_reduced(
    const at::Tensor& q, const at::Tensor& k, const std::optional<at::Tensor>& mask, double scale, bool is_causal,
    int64_t window, double softcap, const std::optional<at::Tensor>& sinks, int64_t query_chunk,
    at::OptionalIntArrayRef heads, c10::string_view reduce, bool keep_weights, int64_t topk, bool entropy,
    const std::optional<at::Tensor>& value) {
  const AttentionSpec spec{scale, is_causal, window, softcap, query_chunk};
  check_attention_probs_reduced(q, k, mask, spec, sinks, heads, std::string(reduce), topk, value);
  const ReduceSpec rs = make_reduce_spec(heads, std::string(reduce), keep_weights, topk, entropy);
  ReducedAttention r = Core(q, k, mask, spec, sinks, rs, value);
  return {r.weights, r.topk_values, r.topk_indices, r.entropy, r.output};
}

template <auto Core>
std::tuple<at::Tensor, at::Tensor> attention_head_stats(
    const at::Tensor& q, const at::Tensor& k, const std::optional<at::Tensor>& mask, double scale, bool is_causal,
    int64_t window, double softcap, const std::optional<at::Tensor>& sinks, int64_t query_chunk,
    const std::optional<at::Tensor>& input_ids, const std::optional<at::Tensor>& valid, int64_t induction_period) {
  const AttentionSpec spec{scale, is_causal, window, softcap, query_chunk};
  check_attention_head_stats(q, k, mask, spec, sinks, input_ids, valid, induction_period);
  HeadStatSums r = Core(q, k, mask, spec, sinks, input_ids, valid, induction_period);
  return {r.sums, r.counts};
}

// One core for every device (ATen ops only).
inline at::Tensor attention_grad_relevance(const at::Tensor& attn, const at::Tensor& grad) {
  check_attention_grad_relevance(attn, grad);
  return attnscope::attention_grad_relevance(attn, grad);
}

}  // namespace kernels
}  // namespace attnscope
