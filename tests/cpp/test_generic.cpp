// The device-generic attention kernels (cpp/src/generic) run here on the CPU against the C++ CPU kernels
// (the generic rollout is tested in test_rollout.cpp: the two HeadReduce enums cannot meet in one file).
#include <gtest/gtest.h>

#include "attnscope/generic/attention.h"

namespace attnscope {
namespace {

double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

TEST(GenericAttention, ProbsMatchTheCpuKernelWithGqaWindowSoftcapAndSinks) {
  at::manual_seed(0);
  const at::Tensor q = at::randn({2, 8, 5, 16}), k = at::randn({2, 2, 9, 16});
  const at::Tensor mask = at::rand({2, 1, 5, 9}) > 0.2, sinks = at::randn({8});
  const AttentionSpec spec{/*scale=*/0.4, /*is_causal=*/true, /*window=*/4, /*softcap=*/1.5, /*query_chunk=*/2};
  EXPECT_LE(max_diff(generic::attention_probs(q, k, mask, spec, sinks), attention_probs(q, k, mask, spec, sinks)),
            1e-6);
}

TEST(GenericAttention, FullyMaskedRowsAreZeros) {
  const at::Tensor q = at::randn({1, 2, 3, 4}), k = at::randn({1, 2, 3, 4});
  at::Tensor mask = at::ones({1, 1, 3, 3}, at::kBool);
  mask.select(2, 1).fill_(false);
  const at::Tensor p = generic::attention_probs(q, k, mask, AttentionSpec{}, std::nullopt);
  EXPECT_EQ(p.select(2, 1).abs().sum().item<double>(), 0.0);
  EXPECT_FALSE(p.isnan().any().item<bool>());
}

TEST(GenericAttention, BackwardMatchesTheCpuKernel) {
  at::manual_seed(1);
  const at::Tensor q = at::randn({1, 4, 6, 8}, at::kDouble), k = at::randn({1, 2, 6, 8}, at::kDouble);
  const at::Tensor sinks = at::randn({4}, at::kDouble);
  const AttentionSpec spec{0.5, true, 0, 2.0, 0};
  const at::Tensor p = attention_probs(q, k, std::nullopt, spec, sinks);
  const at::Tensor g = at::randn(p.sizes(), p.options());
  auto [dq, dk, ds] = attention_probs_backward(g, p, q, k, spec, sinks);
  auto [gq, gk, gs] = generic::attention_probs_backward(g, p, q, k, spec, sinks);
  EXPECT_LE(max_diff(gq, dq), 1e-12);
  EXPECT_LE(max_diff(gk, dk), 1e-12);
  EXPECT_LE(max_diff(gs, ds), 1e-12);
}

}  // namespace
}  // namespace attnscope
