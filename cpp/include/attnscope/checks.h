// The argument checks of every attnscope op, one function per op, called at the op's entry before any kernel.
//
// They read shapes, dtypes and devices (and, where an op documents that it cannot handle them, scan values for NaN
// and infinity with ATen reductions), so they are device-independent: a CPU, CUDA, MPS or XPU implementation of an
// op calls the same function. Errors are c10::ValueError / c10::TypeError (Python ValueError / TypeError) that
// start with the op's name and give the observed values.
//
// What each op validates (docs/reliability.md has the same list):
// - every op: all tensor arguments on one device; dtypes; ranks and sizes against each other; no contiguity is
//   required (kernels copy strided inputs).
// - attention_probs / _reduced / _head_stats: q_heads >= 1, kv_heads >= 1, q_heads % kv_heads == 0, head_dim >= 1
//   (batch, q_len and k_len may be 0: the result is empty, and rows with no visible key are zeros); q, k and sinks
//   finite; a float mask free of NaN and +inf (-inf masks); window, query_chunk >= 0; softcap >= 0 and finite;
//   scale finite.
// - attention_probs_reduced: heads in range, reduce named, 0 <= topk <= k_len.
// - attention_head_stats: input_ids / valid [batch, k_len] integer or bool; induction_period 0 or >= 2.
// - rollout / attention_flow / attention_grad_relevance: attn [layer >= 1, batch, head >= 1, n, n] floating;
//   rollout and flow: every weight finite and >= 0, rows in 0..n-1; relevance: grad of attn's shape (NaN
//   propagates).
// - quadrature_rule: a known rule, 1 <= n (2 for riemann_trapezoid); Gauss-Legendre n <= kMaxGaussLegendrePoints
//   (its cost is O(n^2)); the Riemann rules are O(n).
// - composite_gauss_legendre: bounds 1-D, >= 2 entries, finite, strictly increasing, inside [0, 1]; 1 <= order <=
//   kMaxGaussLegendrePoints.
// - refine_segments: errors [segments] finite; tolerance finite >= 0; max_new >= 0 (cost O(S log S)).
// - topk_merge: values [units, k >= 1], keys of its shape, int64 keys, new_values [rows, units] of values' dtype.
// - vocab_projection: hidden [G, P, d], weight [V >= 1, d], bias [V], reference [P, d], targets [P, T] int64 in
//   0..V-1, 1 <= k <= V, softcap finite >= 0, chunk sizes >= 0; hidden, weight, bias, reference finite.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <string>

#include "attnscope/attention_probs.h"

namespace attnscope {

// Gauss-Legendre costs O(n^2) (Newton on the three-term recurrence); beyond this many points a rule is refused.
constexpr int64_t kMaxGaussLegendrePoints = 4096;

void check_attention_probs(const at::Tensor& q, const at::Tensor& k, const std::optional<at::Tensor>& mask,
                           const AttentionSpec& spec, const std::optional<at::Tensor>& sinks);

void check_attention_probs_backward(const at::Tensor& grad, const at::Tensor& probs, const at::Tensor& q,
                                    const at::Tensor& k, const AttentionSpec& spec,
                                    const std::optional<at::Tensor>& sinks);

void check_attention_probs_reduced(const at::Tensor& q, const at::Tensor& k, const std::optional<at::Tensor>& mask,
                                   const AttentionSpec& spec, const std::optional<at::Tensor>& sinks,
                                   at::OptionalIntArrayRef heads, const std::string& reduce, int64_t topk,
                                   const std::optional<at::Tensor>& value);

void check_attention_head_stats(const at::Tensor& q, const at::Tensor& k, const std::optional<at::Tensor>& mask,
                                const AttentionSpec& spec, const std::optional<at::Tensor>& sinks,
                                const std::optional<at::Tensor>& input_ids, const std::optional<at::Tensor>& valid,
                                int64_t induction_period);

void check_rollout(const at::Tensor& attn, int64_t head_reduce, at::OptionalIntArrayRef rows);

void check_attention_flow(const at::Tensor& attn, int64_t head_reduce, at::OptionalIntArrayRef rows);

void check_attention_grad_relevance(const at::Tensor& attn, const at::Tensor& grad);

void check_quadrature_rule(const std::string& method, int64_t n);

void check_composite_gauss_legendre(const at::Tensor& bounds, int64_t order);

void check_refine_segments(const at::Tensor& bounds, const at::Tensor& errors, double tolerance, int64_t max_new);

void check_topk_merge(const at::Tensor& values, const at::Tensor& keys, const at::Tensor& new_values,
                      const at::Tensor& new_keys);

void check_vocab_projection(const at::Tensor& hidden, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                            const std::optional<at::Tensor>& reference, const at::Tensor& targets, int64_t k,
                            double softcap, int64_t vocab_chunk, int64_t row_block);

}  // namespace attnscope
