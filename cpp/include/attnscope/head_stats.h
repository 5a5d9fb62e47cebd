// Per-head attention statistics computed inside the query-chunk loop from the probabilities, without storing
// them: previous-token, induction and duplicate-token scores, entropy, first-token mass and attended distance.
//
// The op returns per-example sums over the counted query rows and the number of counted rows, so callers can pool
// batches (and layers) exactly: the mean of a statistic is sums[..., s] / counts[..., s].
#pragma once

#include <ATen/ATen.h>

#include <optional>

#include "attnscope/attention_probs.h"

namespace attnscope {

// Column order of the last axis of HeadStatSums. Positions are absolute key positions (query row i sits at
// i + k_len - q_len); a row or key is "valid" when `valid` says so (all valid when absent). Only valid query rows
// that see at least one key are counted.
enum HeadStat : int64_t {
  kPrevToken = 0,   // p[i, i-1]                          rows with i-1 valid
  kInduction = 1,   // p[i, i-P+1]                        rows with i-P, i-P+1 valid and id[i] == id[i-P]  (P >= 2)
  kDuplicate = 2,   // sum_{j<i, valid, id[j]==id[i]} p[i,j]   rows with at least one such j
  kEntropy = 3,     // -sum_j p[i,j] log p[i,j] (nats)     all counted rows
  kFirstToken = 4,  // p[i, f], f = first valid position   all counted rows
  kDistance = 5,    // sum_j p[i,j] |i - j|                all counted rows
  kNumHeadStats = 6,
};

struct HeadStatSums {
  at::Tensor sums;    // [batch, q_heads, kNumHeadStats], float64
  at::Tensor counts;  // [batch, kNumHeadStats], int64: counted rows per example (the same for every head)
};

// Same attention inputs and semantics as attention_probs. `input_ids` [batch, k_len] (integer) enables the
// duplicate-token and induction statistics (their counts are 0 without it); `valid` [batch, k_len] (bool or
// integer, nonzero = real token) excludes padding; `induction_period` P > 1 is the length of the repeated segment
// (0 = no induction statistic). Temporary memory is one chunk of rows per thread.
HeadStatSums attention_head_stats(const at::Tensor& q, const at::Tensor& k, const std::optional<at::Tensor>& mask,
                                  const AttentionSpec& spec, const std::optional<at::Tensor>& sinks,
                                  const std::optional<at::Tensor>& input_ids, const std::optional<at::Tensor>& valid,
                                  int64_t induction_period);

}  // namespace attnscope
