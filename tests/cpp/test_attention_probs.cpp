// attention_probs against a naive reference built from plain ATen ops in float64.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <limits>
#include <optional>

#include "attnscope/attention_probs.h"

namespace {

using attnscope::AttentionSpec;

// Plain reference: repeat kv heads, full logits, masks by comparisons, softmax with an optional sink column.
at::Tensor reference(const at::Tensor& q, const at::Tensor& k, const std::optional<at::Tensor>& mask,
                     const AttentionSpec& s, const std::optional<at::Tensor>& sinks) {
  const int64_t H = q.size(1), KV = k.size(1), Lq = q.size(2), Lk = k.size(2);
  at::Tensor kk = k.to(at::kDouble).repeat_interleave(H / KV, /*dim=*/1);
  at::Tensor logits = at::matmul(q.to(at::kDouble), kk.transpose(2, 3)) * s.scale;
  if (s.softcap > 0) logits = at::tanh(logits / s.softcap) * s.softcap;
  const double inf = std::numeric_limits<double>::infinity();
  if (mask) {
    if (mask->scalar_type() == at::kBool) {
      logits = logits.masked_fill(mask->logical_not(), -inf);
    } else {
      logits = logits + mask->to(at::kDouble);
    }
  }
  at::Tensor pos = at::arange(Lq, at::kLong).unsqueeze(1) + (Lk - Lq);
  at::Tensor key = at::arange(Lk, at::kLong).unsqueeze(0);
  if (s.is_causal || s.window > 0) logits = logits.masked_fill(key > pos, -inf);
  if (s.window > 0) logits = logits.masked_fill(pos - key >= s.window, -inf);
  if (sinks) {
    at::Tensor col = sinks->to(at::kDouble).view({1, H, 1, 1}).expand({q.size(0), H, Lq, 1});
    at::Tensor full = at::cat({logits, col}, /*dim=*/-1);
    return at::softmax(full, /*dim=*/-1).narrow(/*dim=*/-1, /*start=*/0, /*length=*/Lk);
  }
  at::Tensor p = at::softmax(logits, /*dim=*/-1);
  return at::nan_to_num(p, /*nan=*/0.0);  // fully masked rows: softmax of all -inf is NaN; the op gives zeros
}

void expect_close(const at::Tensor& a, const at::Tensor& b, double tol) {
  ASSERT_EQ(a.sizes(), b.sizes());
  const double err = (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
  EXPECT_LE(err, tol);
}

class AttentionProbsTest : public ::testing::Test {
 protected:
  void SetUp() override { at::manual_seed(0); }
  at::Tensor q = at::randn({2, 6, 5, 8}, at::kDouble);
  at::Tensor k = at::randn({2, 3, 9, 8}, at::kDouble);
};

TEST_F(AttentionProbsTest, PlainMatchesReference) {
  AttentionSpec s;
  s.scale = 0.35;
  expect_close(attnscope::attention_probs(q, k, std::nullopt, s, std::nullopt), reference(q, k, std::nullopt, s, std::nullopt), 1e-12);
}

TEST_F(AttentionProbsTest, GroupedQueryAttention) {
  // q head h reads kv head h / 2: compare with an explicit repeat of k.
  AttentionSpec s;
  s.scale = 0.5;
  at::Tensor grouped = attnscope::attention_probs(q, k, std::nullopt, s, std::nullopt);
  at::Tensor repeated = attnscope::attention_probs(q, k.repeat_interleave(2, 1), std::nullopt, s, std::nullopt);
  expect_close(grouped, repeated, 1e-14);
  expect_close(grouped, reference(q, k, std::nullopt, s, std::nullopt), 1e-12);
}

TEST_F(AttentionProbsTest, CausalWithOffset) {
  AttentionSpec s;
  s.scale = 0.3;
  s.is_causal = true;
  at::Tensor p = attnscope::attention_probs(q, k, std::nullopt, s, std::nullopt);
  expect_close(p, reference(q, k, std::nullopt, s, std::nullopt), 1e-12);
  // query 0 sits at absolute position 4 (k_len 9 - q_len 5): keys 5.. are invisible.
  EXPECT_EQ(p.select(2, 0).narrow(-1, 5, 4).abs().max().item<double>(), 0.0);
  EXPECT_GT(p.select(2, 0).select(-1, 4).min().item<double>(), 0.0);
}

TEST_F(AttentionProbsTest, SlidingWindow) {
  AttentionSpec s;
  s.scale = 0.3;
  s.window = 3;
  at::Tensor p = attnscope::attention_probs(q, k, std::nullopt, s, std::nullopt);
  expect_close(p, reference(q, k, std::nullopt, s, std::nullopt), 1e-12);
  // The last query (position 8) sees keys 6, 7, 8 only.
  at::Tensor last = p.select(2, 4);
  EXPECT_EQ(last.narrow(-1, 0, 6).abs().max().item<double>(), 0.0);
  EXPECT_NEAR(last.sum(-1).min().item<double>(), 1.0, 1e-12);
}

TEST_F(AttentionProbsTest, Softcap) {
  AttentionSpec s;
  s.scale = 2.0;
  s.softcap = 1.5;
  at::Tensor capped = attnscope::attention_probs(q, k, std::nullopt, s, std::nullopt);
  expect_close(capped, reference(q, k, std::nullopt, s, std::nullopt), 1e-12);
  s.softcap = 0.0;
  at::Tensor uncapped = attnscope::attention_probs(q, k, std::nullopt, s, std::nullopt);
  EXPECT_GT((capped - uncapped).abs().max().item<double>(), 1e-2);  // the cap bites at this scale
}

TEST_F(AttentionProbsTest, Sinks) {
  AttentionSpec s;
  s.scale = 0.4;
  s.is_causal = true;
  at::Tensor sinks = at::randn({6}, at::kDouble);
  at::Tensor p = attnscope::attention_probs(q, k, std::nullopt, s, sinks);
  expect_close(p, reference(q, k, std::nullopt, s, sinks), 1e-12);
  EXPECT_LT(p.sum(-1).max().item<double>(), 1.0);  // the sink keeps some mass
}

TEST_F(AttentionProbsTest, BoolAndAdditiveMasks) {
  AttentionSpec s;
  s.scale = 0.3;
  at::Tensor keep = at::rand({2, 1, 5, 9}, at::kDouble) > 0.3;
  expect_close(attnscope::attention_probs(q, k, keep, s, std::nullopt), reference(q, k, keep, s, std::nullopt), 1e-12);
  at::Tensor additive = at::randn({2, 6, 5, 9}, at::kDouble);
  expect_close(attnscope::attention_probs(q, k, additive, s, std::nullopt), reference(q, k, additive, s, std::nullopt),
               1e-12);
  at::Tensor key_only = at::rand({9}, at::kDouble) > 0.5;  // broadcast from [k_len]
  key_only.index_put_({0}, true);
  expect_close(attnscope::attention_probs(q, k, key_only.view({1, 9}), s, std::nullopt),
               reference(q, k, key_only.view({1, 9}), s, std::nullopt), 1e-12);
}

TEST_F(AttentionProbsTest, FullyMaskedRowsAreZero) {
  AttentionSpec s;
  s.scale = 0.3;
  at::Tensor keep = at::ones({2, 1, 5, 9}, at::kBool);
  keep.select(2, 1).fill_(false);  // row 1 of every batch and head sees nothing
  at::Tensor p = attnscope::attention_probs(q, k, keep, s, std::nullopt);
  EXPECT_FALSE(p.isnan().any().item<bool>());
  EXPECT_EQ(p.select(2, 1).abs().max().item<double>(), 0.0);
  EXPECT_NEAR(p.select(2, 0).sum(-1).min().item<double>(), 1.0, 1e-12);
  // -inf additive masks behave the same.
  at::Tensor additive = at::zeros({2, 1, 5, 9}, at::kDouble);
  additive.select(2, 3).fill_(-std::numeric_limits<double>::infinity());
  at::Tensor p2 = attnscope::attention_probs(q, k, additive, s, std::nullopt);
  EXPECT_FALSE(p2.isnan().any().item<bool>());
  EXPECT_EQ(p2.select(2, 3).abs().max().item<double>(), 0.0);
  // A window of 1 on q_len > k_len-aligned rows with a mask hiding the diagonal: all rows empty.
  AttentionSpec w = s;
  w.window = 1;
  at::Tensor diag_hidden = at::ones({5, 9}, at::kBool);
  for (int i = 0; i < 5; ++i) diag_hidden.index_put_({i, i + 4}, false);
  at::Tensor p3 = attnscope::attention_probs(q, k, diag_hidden, w, std::nullopt);
  EXPECT_EQ(p3.abs().max().item<double>(), 0.0);
}

TEST_F(AttentionProbsTest, EveryChunkSizeGivesIdenticalResults) {
  AttentionSpec s;
  s.scale = 0.3;
  s.is_causal = true;
  s.window = 4;
  s.softcap = 2.0;
  at::Tensor sinks = at::randn({6}, at::kDouble);
  at::Tensor keep = at::rand({2, 1, 5, 9}, at::kDouble) > 0.2;
  at::Tensor whole = attnscope::attention_probs(q, k, keep, s, sinks);
  expect_close(whole, reference(q, k, keep, s, sinks), 1e-12);
  for (int64_t chunk = 1; chunk <= q.size(2) + 1; ++chunk) {
    s.query_chunk = chunk;
    EXPECT_TRUE(at::equal(attnscope::attention_probs(q, k, keep, s, sinks), whole)) << "query_chunk=" << chunk;
  }
}

TEST_F(AttentionProbsTest, HalfInputsComputeInFloat) {
  AttentionSpec s;
  s.scale = 0.3;
  at::Tensor p = attnscope::attention_probs(q.to(at::kBFloat16), k.to(at::kBFloat16), std::nullopt, s, std::nullopt);
  EXPECT_EQ(p.scalar_type(), at::kFloat);
  expect_close(p, reference(q.to(at::kBFloat16), k.to(at::kBFloat16), std::nullopt, s, std::nullopt), 1e-6);
}

TEST_F(AttentionProbsTest, BackwardMatchesAutograd) {
  AttentionSpec s;
  s.scale = 0.6;
  s.softcap = 1.2;
  s.is_causal = true;
  at::Tensor sinks = at::randn({6}, at::kDouble);
  at::Tensor qq = q.clone().requires_grad_(true), kk = k.clone().requires_grad_(true),
             ss = sinks.clone().requires_grad_(true);
  at::Tensor ref = reference(qq, kk, std::nullopt, s, ss);
  at::Tensor upstream = at::randn(ref.sizes(), at::kDouble);
  (ref * upstream).sum().backward();
  at::Tensor p = attnscope::attention_probs(q, k, std::nullopt, s, sinks);
  auto [dq, dk, dsinks] = attnscope::attention_probs_backward(upstream, p, q, k, s, sinks);
  expect_close(dq, qq.grad(), 1e-10);
  expect_close(dk, kk.grad(), 1e-10);
  expect_close(dsinks, ss.grad(), 1e-10);
}

TEST(AttentionProbsErrors, BadShapesRaise) {
  AttentionSpec s;
  at::Tensor q = at::randn({1, 4, 3, 8}), k = at::randn({1, 2, 3, 8});
  EXPECT_THROW(attnscope::attention_probs(q.select(0, 0), k, std::nullopt, s, std::nullopt), c10::Error);
  EXPECT_THROW(attnscope::attention_probs(q, at::randn({1, 2, 3, 7}), std::nullopt, s, std::nullopt), c10::Error);
  EXPECT_THROW(attnscope::attention_probs(q, at::randn({1, 3, 3, 8}), std::nullopt, s, std::nullopt), c10::Error);
  EXPECT_THROW(attnscope::attention_probs(q, k, at::ones({1, 3, 3, 5}, at::kBool), s, std::nullopt), c10::Error);
  EXPECT_THROW(attnscope::attention_probs(q, k, std::nullopt, s, at::zeros({3})), c10::Error);
  AttentionSpec negative;
  negative.query_chunk = -1;
  EXPECT_THROW(attnscope::attention_probs(q, k, std::nullopt, negative, std::nullopt), c10::Error);
  AttentionSpec causal;
  causal.is_causal = true;
  EXPECT_THROW(attnscope::attention_probs(q, at::randn({1, 2, 2, 8}), std::nullopt, causal, std::nullopt), c10::Error);
}

}  // namespace
