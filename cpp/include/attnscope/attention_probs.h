// Attention probabilities softmax(scale * Q K^T) computed in query chunks, for capture and analysis.
//
// Shapes: q [batch, q_heads, q_len, head_dim], k [batch, kv_heads, k_len, head_dim] with
// q_heads % kv_heads == 0 (grouped-query attention: q head h reads kv head h / (q_heads / kv_heads)).
// Output: [batch, q_heads, q_len, k_len], float32 (float64 for float64 inputs).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <tuple>

namespace attnscope {

// Everything that decides which keys a query sees and how logits are formed.
struct AttentionSpec {
  double scale = 1.0;
  bool is_causal = false;  // queries aligned to the end of the keys (KV-cache convention)
  int64_t window = 0;      // > 0: key j visible from query i iff 0 <= i - j < window (absolute positions)
  double softcap = 0.0;    // > 0: logits become softcap * tanh(logits / softcap)
  int64_t query_chunk = 0; // rows computed per task; 0 = automatic
};

// Query rows per chunk when the caller passes 0: bounds a chunk's scratch to about 256K elements.
int64_t auto_query_chunk(int64_t q_len, int64_t k_len);

// Forward. `mask` is boolean (true = attend) or additive float, broadcastable to
// [batch, 1 or q_heads, q_len, k_len]; `sinks` holds one logit per q head that joins the softmax and is
// then dropped. Fully masked rows are zeros.
at::Tensor attention_probs(const at::Tensor& q, const at::Tensor& k, const std::optional<at::Tensor>& mask,
                           const AttentionSpec& spec, const std::optional<at::Tensor>& sinks);

// Backward of attention_probs given its output `probs` and the upstream gradient `grad` (both
// [batch, q_heads, q_len, k_len]). Returns (dq, dk, dsinks) in the compute dtype; dsinks is empty when
// `sinks` is absent. Masked entries have zero probability, so the mask itself is not needed here.
std::tuple<at::Tensor, at::Tensor, at::Tensor> attention_probs_backward(
    const at::Tensor& grad, const at::Tensor& probs, const at::Tensor& q, const at::Tensor& k,
    const AttentionSpec& spec, const std::optional<at::Tensor>& sinks);

}  // namespace attnscope
