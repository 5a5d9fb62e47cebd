// Streaming vocabulary projection for the logit lens: rows of (normed) residual states are multiplied with the
// unembedding one vocabulary chunk at a time, and per row only running statistics are kept: a top-k heap, an
// online log-sum-exp, the entropy's running sum, the KL divergence to a reference row's distribution, and the
// logit and rank of target tokens. [groups, positions, vocab] is never built; temporary memory is one
// [rows of one block, vocab chunk] logits tile.
#pragma once

#include <ATen/ATen.h>

#include <optional>

namespace attnscope {

struct VocabProjection {
  at::Tensor topk_logprobs;    // [G, P, k]  log-probabilities of the k most likely tokens, descending
  at::Tensor topk_ids;         // [G, P, k]  int64; ties: the smaller id first
  at::Tensor logsumexp;        // [G, P]     log sum_v exp(z_v)
  at::Tensor entropy;          // [G, P]     -sum_v p_v log p_v (nats)
  at::Tensor kl;               // [G, P]     KL(reference_p || row) = sum_v q_v (log q_v - log p_v); 0 without reference
  at::Tensor target_logprobs;  // [G, P, T]  log p of targets[p, t]
  at::Tensor target_ranks;     // [G, P, T]  int64: how many tokens have a strictly larger logit than the target
};

// hidden [G, P, d] (groups, e.g. layers, times rows, e.g. batch*positions), already through the final norm;
// weight [V, d] the unembedding; bias [V] optional; reference [P, d] optional (the rows whose distributions the KL
// is taken from: row (g, p) is compared with reference row p); targets [P, T] int64 token ids (T may be 0).
// The logits are z = hidden @ weight^T + bias, then softcap * tanh(z / softcap) when softcap > 0.
// vocab_chunk: vocabulary entries per tile (0 = 2048); row_block: positions per block (0 = chosen so that a tile
// holds about 1M logits). Results do not depend on vocab_chunk. float32/float64 compute in their own type; half
// and bfloat16 inputs are computed in float32 (one chunk of weights converted at a time).
VocabProjection vocab_projection(const at::Tensor& hidden, const at::Tensor& weight,
                                 const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& reference,
                                 const at::Tensor& targets, int64_t k, double softcap, int64_t vocab_chunk,
                                 int64_t row_block);

}  // namespace attnscope
