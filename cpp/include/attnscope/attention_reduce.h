// Reductions of attention probabilities computed inside the query-chunk loop, so the full
// [batch, heads, q_len, k_len] tensor is never built when it is not asked for.
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <string>
#include <vector>

#include "attnscope/attention_probs.h"

namespace attnscope {

enum class HeadReduce { kNone, kMean, kMax, kSum };

// Parses "none" | "mean" | "max" | "sum"; anything else is a c10::ValueError naming the value.
HeadReduce parse_head_reduce(const std::string& name);

struct ReduceSpec {
  std::vector<int64_t> heads;  // selected q heads, in order; empty = all
  HeadReduce reduce = HeadReduce::kNone;
  bool keep_weights = true;    // false: only top-k / entropy are wanted
  int64_t topk = 0;            // > 0: the k largest probabilities (and key indices) per row and head
  bool entropy = false;        // Shannon entropy (nats) per row and head
};

struct ReducedAttention {
  at::Tensor weights;       // [batch, heads_sel, q_len, k_len], or [batch, q_len, k_len] when reduced; empty if not kept
  at::Tensor topk_values;   // [batch, heads_sel, q_len, topk] or empty
  at::Tensor topk_indices;  // [batch, heads_sel, q_len, topk] (int64) or empty
  at::Tensor entropy;       // [batch, heads_sel, q_len] or empty
  at::Tensor output;        // [batch, q_len, q_heads, v_dim] = P.V over every head when `value` is given, else empty
};

// The schema's reduction arguments as a ReduceSpec (`reduce` parsed by parse_head_reduce).
ReduceSpec make_reduce_spec(at::OptionalIntArrayRef heads, const std::string& reduce, bool keep_weights, int64_t topk,
                            bool entropy);

// Same inputs and semantics as attention_probs. Peak temporary memory is one chunk of rows per thread,
// independent of the number of heads. With `value` [batch, kv_heads, k_len, v_dim] the attention output P.V of
// every q head is computed from the same probabilities in the chunk loop (the layer's output without a second
// Q.K^T), in the compute dtype, laid out as attention functions return it.
ReducedAttention attention_probs_reduced(const at::Tensor& q, const at::Tensor& k,
                                         const std::optional<at::Tensor>& mask, const AttentionSpec& spec,
                                         const std::optional<at::Tensor>& sinks, const ReduceSpec& reduce,
                                         const std::optional<at::Tensor>& value = std::nullopt);

}  // namespace attnscope
