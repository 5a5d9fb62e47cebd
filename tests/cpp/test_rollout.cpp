// Rollout against a plain matrix-product chain, closed forms (identity, one layer), and its input checks.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <limits>
#include <vector>

#include "attnscope/attention_flow.h"
#include "attnscope/generic/analysis.h"
#include "attnscope/rollout.h"

namespace {

using attnscope::HeadReduce;

// [layer, batch, head, L, L], rows sum to 1.
at::Tensor random_attention(int64_t layers, int64_t batch, int64_t heads, int64_t length, at::ScalarType dtype) {
  at::Tensor a = at::rand({layers, batch, heads, length, length}, dtype);
  return a / a.sum(/*dim=*/-1, /*keepdim=*/true);
}

// Reference: reduce heads, add I, row-normalise, multiply from the first layer up with plain at::matmul.
at::Tensor reference(const at::Tensor& attn, bool residual, HeadReduce reduce) {
  at::Tensor a = attn.to(at::kDouble);
  a = reduce == HeadReduce::kMean ? a.mean(2) : std::get<0>(a.max(2));
  if (residual) {
    a = a + at::eye(a.size(-1), at::kDouble);
    a = a / a.sum(-1, true);
  }
  at::Tensor r = a[0];
  for (int64_t l = 1; l < a.size(0); ++l) r = at::matmul(a[l], r);
  return r;
}

double max_diff(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

class AttentionRollout : public ::testing::Test {
 protected:
  void SetUp() override { at::manual_seed(0); }
};

TEST_F(AttentionRollout, MatchesMatrixChain) {
  at::Tensor attn = random_attention(5, 3, 4, 11, at::kDouble);
  for (bool residual : {true, false}) {
    for (HeadReduce reduce : {HeadReduce::kMean, HeadReduce::kMax}) {
      at::Tensor out = attnscope::rollout(attn, residual, reduce, std::nullopt);
      EXPECT_EQ(out.scalar_type(), at::kDouble);
      EXPECT_LE(max_diff(out, reference(attn, residual, reduce)), 1e-13) << residual << " " << int(reduce);
    }
  }
}

TEST_F(AttentionRollout, Float32StaysFloat32) {
  at::Tensor attn = random_attention(6, 2, 3, 16, at::kFloat);
  at::Tensor out = attnscope::rollout(attn, true, HeadReduce::kMean, std::nullopt);
  EXPECT_EQ(out.scalar_type(), at::kFloat);
  EXPECT_LE(max_diff(out, reference(attn, true, HeadReduce::kMean)), 1e-6);
}

TEST_F(AttentionRollout, RowsAreRowsOfTheFullResult) {
  at::Tensor attn = random_attention(4, 2, 2, 9, at::kDouble);
  at::Tensor full = attnscope::rollout(attn, true, HeadReduce::kMean, std::nullopt);
  std::vector<int64_t> rows{8, 2, 2, 0};
  at::Tensor some = attnscope::rollout(attn, true, HeadReduce::kMean, rows);
  EXPECT_LE(max_diff(some, full.index_select(1, at::tensor(rows, at::kLong))), 1e-14);
  std::vector<int64_t> none;
  EXPECT_EQ(attnscope::rollout(attn, true, HeadReduce::kMean, none).sizes(), (at::IntArrayRef{2, 0, 9}));
}

TEST_F(AttentionRollout, IdentityForSingleLayer) {
  // One layer: rollout is Â itself, i.e. the head mean as is, or rownorm(mean + I) = (mean + I) / 2.
  at::Tensor attn = random_attention(1, 2, 3, 5, at::kDouble);
  at::Tensor mean = attn[0].mean(1);
  EXPECT_LE(max_diff(attnscope::rollout(attn, false, HeadReduce::kMean, std::nullopt), mean), 1e-15);
  EXPECT_LE(max_diff(attnscope::rollout(attn, true, HeadReduce::kMean, std::nullopt),
                     (mean + at::eye(5, at::kDouble)) / 2),
            1e-15);
}

TEST_F(AttentionRollout, IdentityAttentionGivesIdentity) {
  at::Tensor attn = at::eye(7, at::kDouble).expand({6, 2, 4, 7, 7});
  at::Tensor eye = at::eye(7, at::kDouble).expand({2, 7, 7});
  EXPECT_TRUE(at::equal(attnscope::rollout(attn, true, HeadReduce::kMean, std::nullopt), eye));
  EXPECT_TRUE(at::equal(attnscope::attention_flow(attn, true, HeadReduce::kMax, std::nullopt, true), eye));
}

TEST_F(AttentionRollout, RejectsBadInput) {
  at::Tensor ok = random_attention(2, 1, 2, 4, at::kDouble);
  auto call = [](const at::Tensor& a) { return attnscope::rollout(a, true, HeadReduce::kMean, std::nullopt); };
  EXPECT_THROW(call(ok[0]), c10::ValueError);                                    // 4-D
  EXPECT_THROW(call(at::rand({2, 1, 2, 4, 5}, at::kDouble)), c10::ValueError);  // query != key
  EXPECT_THROW(call(-ok), c10::ValueError);
  at::Tensor nan = ok.clone();
  nan[1][0][1][2][3] = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THROW(call(nan), c10::ValueError);
  EXPECT_THROW(call(ok.to(at::kInt)), c10::TypeError);
  std::vector<int64_t> rows{-1};
  EXPECT_THROW(attnscope::rollout(ok, true, HeadReduce::kMean, rows), c10::ValueError);
  EXPECT_THROW(attnscope::head_reduce_from_int(2), c10::ValueError);
}

// The device-generic rollout (cpp/src/generic, what CUDA, MPS and XPU run) against the CPU kernel, here on the CPU.
TEST(GenericRollout, MatchesTheCpuKernel) {
  at::manual_seed(2);
  const at::Tensor attn = random_attention(3, 2, 4, 7, at::kFloat);
  const std::vector<int64_t> rows{6, 0};
  auto diff = [](const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); };
  EXPECT_LE(diff(attnscope::generic::rollout(attn, true, HeadReduce::kMean, rows),
                 attnscope::rollout(attn, true, HeadReduce::kMean, rows)), 1e-6);
  EXPECT_LE(diff(attnscope::generic::rollout(attn, false, HeadReduce::kMax, std::nullopt),
                 attnscope::rollout(attn, false, HeadReduce::kMax, std::nullopt)), 1e-6);
}

}  // namespace
