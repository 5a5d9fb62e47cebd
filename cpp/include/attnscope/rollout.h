// Attention rollout (Abnar & Zuidema, 2020) and the per-layer matrices it chains, which attention flow shares.
//
// attn is [layer, batch, head, query, key] with query == key (self-attention over one sequence): layer l's
// outputs are layer l + 1's inputs. Per layer the heads are reduced (mean or max) to A_l, and
//   residual = true:  Â_l = rownorm(A_l + I)     (the residual connection as an identity "head")
//   residual = false: Â_l = A_l                  (as is, as in the paper's code)
// Rollout is R = Â_{L-1} · ... · Â_1 · Â_0: row i says how much output position i (top) draws on each input token.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace attnscope {

enum class HeadReduce : int64_t { kMean = 0, kMax = 1 };

// The schema's int for head_reduce (0 = mean, 1 = max); anything else is a ValueError.
HeadReduce head_reduce_from_int(int64_t code);

// Checks attn (5-D, floating, query == key, at least one layer and one head; the head mean or max finite and
// >= 0, which NaN or inf in any weight fails) and returns
// Â as [layer, batch, query, key] in `dtype` (float32 or float64). Heads are reduced in the weights' precision
// (float32 for half types), then widened.
at::Tensor augmented_attention(const at::Tensor& attn, bool residual, HeadReduce reduce, at::ScalarType dtype);

// Rollout for all query rows ([batch, query, key]) or only `rows` ([batch, len(rows), key]); the latter uses
// vector-matrix products from the top layer down, O(layers · L²) per row instead of O(layers · L³).
// Result dtype: float64 for float64 input, else float32. Parallel over batch with at::parallel_for.
at::Tensor rollout(const at::Tensor& attn, bool residual, HeadReduce reduce, at::OptionalIntArrayRef rows);

}  // namespace attnscope
