// Device-generic attention ops: the semantics of attention_probs.h, attention_reduce.h and head_stats.h written
// with ATen operations only, so they run on any device (CUDA, MPS, XPU; the CPU too, for tests). Work is chunked
// over query rows: a chunk holds all (batch, head) pairs of `rows` queries, and the automatic chunk bounds it to
// about 16M logits (64 MiB in float32) whatever the sequence length. Results are float32 (float64 for float64
// inputs) on the inputs' device, equal to the CPU kernels' up to floating-point summation order.
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <tuple>

#include "attnscope/attention_probs.h"
#include "attnscope/attention_reduce.h"
#include "attnscope/head_stats.h"

namespace attnscope {
namespace generic {

// Query rows per chunk when spec.query_chunk is 0: about 16M logits per chunk over all (batch, head) pairs.
int64_t auto_query_chunk(int64_t batch_heads, int64_t q_len, int64_t k_len);

at::Tensor attention_probs(const at::Tensor& q, const at::Tensor& k, const std::optional<at::Tensor>& mask,
                           const AttentionSpec& spec, const std::optional<at::Tensor>& sinks);

std::tuple<at::Tensor, at::Tensor, at::Tensor> attention_probs_backward(
    const at::Tensor& grad, const at::Tensor& probs, const at::Tensor& q, const at::Tensor& k,
    const AttentionSpec& spec, const std::optional<at::Tensor>& sinks);

ReducedAttention attention_probs_reduced(const at::Tensor& q, const at::Tensor& k,
                                         const std::optional<at::Tensor>& mask, const AttentionSpec& spec,
                                         const std::optional<at::Tensor>& sinks, const ReduceSpec& reduce,
                                         const std::optional<at::Tensor>& value = std::nullopt);

HeadStatSums attention_head_stats(const at::Tensor& q, const at::Tensor& k, const std::optional<at::Tensor>& mask,
                                  const AttentionSpec& spec, const std::optional<at::Tensor>& sinks,
                                  const std::optional<at::Tensor>& input_ids, const std::optional<at::Tensor>& valid,
                                  int64_t induction_period);

}  // namespace generic
}  // namespace attnscope
