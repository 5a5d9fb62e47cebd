// attention_head_stats against statistics computed row by row from the full attention_probs tensor.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <cstdlib>
#include <optional>

#include "attnscope/attention_probs.h"
#include "attnscope/head_stats.h"

namespace {

using attnscope::AttentionSpec;

// Plain loops over the materialised probabilities, in float64: sums [B, H, 6] and counts [B, 6].
std::pair<at::Tensor, at::Tensor> reference(const at::Tensor& p, const at::Tensor& ids, const at::Tensor& valid,
                                            int64_t period) {
  const int64_t B = p.size(0), H = p.size(1), L = p.size(3);
  at::Tensor sums = at::zeros({B, H, 6}, at::kDouble), counts = at::zeros({B, 6}, at::kLong);
  const at::Tensor pd = p.to(at::kDouble);
  auto P = pd.accessor<double, 4>();
  auto id = ids.accessor<int64_t, 2>();
  auto v = valid.accessor<bool, 2>();
  auto S = sums.accessor<double, 3>();
  auto C = counts.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    int64_t first = 0;
    while (!v[b][first]) ++first;
    for (int64_t i = 0; i < L; ++i) {
      if (!v[b][i]) continue;
      const bool prev = i >= 1 && v[b][i - 1];
      const bool ind = period > 0 && i - period >= 0 && v[b][i - period] && v[b][i - period + 1] &&
                       id[b][i] == id[b][i - period];
      bool dup = false;
      for (int64_t j = 0; j < i; ++j) dup = dup || (v[b][j] && id[b][j] == id[b][i]);
      C[b][0] += prev;
      C[b][1] += ind;
      C[b][2] += dup;
      C[b][3] += 1;
      C[b][4] += 1;
      C[b][5] += 1;
      for (int64_t h = 0; h < H; ++h) {
        if (prev) S[b][h][0] += P[b][h][i][i - 1];
        if (ind) S[b][h][1] += P[b][h][i][i - period + 1];
        for (int64_t j = 0; j < i; ++j) {
          if (v[b][j] && id[b][j] == id[b][i]) S[b][h][2] += P[b][h][i][j];
        }
        for (int64_t j = 0; j < L; ++j) {
          const double x = P[b][h][i][j];
          if (x > 0) S[b][h][3] -= x * std::log(x);
          S[b][h][5] += x * std::abs(static_cast<double>(i - j));
        }
        S[b][h][4] += P[b][h][i][first];
      }
    }
  }
  return {sums, counts};
}

class HeadStatsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    at::manual_seed(0);
    q = at::randn({2, 4, 12, 8}, at::kDouble);
    k = at::randn({2, 2, 12, 8}, at::kDouble);
    // Repeated segments of length 5 after a "bos", so induction and duplicate rows exist.
    ids = at::randint(3, 9, {2, 12}, at::kLong);
    ids.narrow(1, 6, 5).copy_(ids.narrow(1, 1, 5));
    valid = at::ones({2, 12}, at::kBool);
    valid[1].narrow(0, 9, 3).fill_(false);  // right padding in example 1
  }
  at::Tensor q, k, ids, valid;
};

TEST_F(HeadStatsTest, CausalPaddedGqaMatchesReference) {
  for (int64_t chunk : {0, 1, 5}) {
    AttentionSpec s;
    s.scale = 0.4;
    s.is_causal = true;
    s.query_chunk = chunk;
    at::Tensor mask = valid.view({2, 1, 1, 12});
    at::Tensor p = attnscope::attention_probs(q, k, mask, s, std::nullopt);
    auto [ref_sums, ref_counts] = reference(p, ids, valid, /*period=*/5);
    auto r = attnscope::attention_head_stats(q, k, mask, s, std::nullopt, ids, valid, /*induction_period=*/5);
    EXPECT_TRUE(at::equal(r.counts, ref_counts)) << "chunk " << chunk;
    EXPECT_LE((r.sums - ref_sums).abs().max().item<double>(), 1e-10) << "chunk " << chunk;
    EXPECT_GT(ref_counts[0][1].item<int64_t>(), 0);  // the induction rows were found
  }
}

TEST_F(HeadStatsTest, BidirectionalWindowAndSinks) {
  AttentionSpec s;
  s.scale = 0.3;
  s.window = 4;
  s.is_causal = true;
  at::Tensor sinks = at::randn({4}, at::kDouble);
  at::Tensor p = attnscope::attention_probs(q, k, std::nullopt, s, sinks);
  at::Tensor all = at::ones_like(valid);
  auto [ref_sums, ref_counts] = reference(p, ids, all, /*period=*/0);
  auto r = attnscope::attention_head_stats(q, k, std::nullopt, s, sinks, ids, std::nullopt, 0);
  EXPECT_TRUE(at::equal(r.counts, ref_counts));
  EXPECT_LE((r.sums - ref_sums).abs().max().item<double>(), 1e-10);

  AttentionSpec bi;  // bidirectional: distance counts keys on both sides
  bi.scale = 0.3;
  p = attnscope::attention_probs(q, k, std::nullopt, bi, std::nullopt);
  std::tie(ref_sums, ref_counts) = reference(p, ids, all, 0);
  r = attnscope::attention_head_stats(q, k, std::nullopt, bi, std::nullopt, ids, std::nullopt, 0);
  EXPECT_LE((r.sums - ref_sums).abs().max().item<double>(), 1e-10);
}

TEST_F(HeadStatsTest, WithoutIdsDuplicateAndInductionAreNotCounted) {
  AttentionSpec s;
  s.is_causal = true;
  auto r = attnscope::attention_head_stats(q, k, std::nullopt, s, std::nullopt, std::nullopt, std::nullopt, 5);
  EXPECT_EQ(r.counts.select(1, attnscope::kDuplicate).sum().item<int64_t>(), 0);
  EXPECT_EQ(r.counts.select(1, attnscope::kInduction).sum().item<int64_t>(), 0);
  EXPECT_EQ(r.counts.select(1, attnscope::kEntropy).sum().item<int64_t>(), 24);
}

TEST_F(HeadStatsTest, BadInputsAreValueErrors) {
  AttentionSpec s;
  EXPECT_THROW(attnscope::attention_head_stats(q, k, std::nullopt, s, std::nullopt, ids, std::nullopt, 1),
               c10::ValueError);
  EXPECT_THROW(attnscope::attention_head_stats(q, k, std::nullopt, s, std::nullopt, ids.narrow(1, 0, 5),
                                               std::nullopt, 0),
               c10::ValueError);
  EXPECT_THROW(attnscope::attention_head_stats(q, k, std::nullopt, s, std::nullopt, std::nullopt,
                                               valid.unsqueeze(0), 0),
               c10::ValueError);
}

}  // namespace
