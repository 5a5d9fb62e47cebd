// attention_grad_relevance against closed forms (one layer: I + mean_h relu(G * A); uniform attention) and the
// rule unrolled by hand over layers, and its input checks.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cmath>

#include "attnscope/relevance.h"

namespace {

double max_diff(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

TEST(AttentionGradRelevance, OneLayerIsIdentityPlusMeanPositivePart) {
  at::Tensor a = at::rand({1, 2, 3, 5, 5}, at::kDouble).softmax(/*dim=*/-1);
  at::Tensor g = at::randn({1, 2, 3, 5, 5}, at::kDouble);
  at::Tensor want = at::eye(5, at::kDouble) + (a[0] * g[0]).clamp_min(0).mean(/*dim=*/1);
  EXPECT_LT(max_diff(attnscope::attention_grad_relevance(a, g), want), 1e-14);
}

TEST(AttentionGradRelevance, UniformAttentionWithUnitGradient) {
  // Every layer's Abar is J/n, and (J/n)^2 = J/n, so after L layers R = I + (2^L - 1) J/n.
  const int64_t n = 4, layers = 3;
  at::Tensor a = at::full({layers, 1, 2, n, n}, 1.0 / n, at::kDouble);
  at::Tensor got = attnscope::attention_grad_relevance(a, at::ones_like(a));
  at::Tensor want = at::eye(n, at::kDouble) + (std::pow(2.0, layers) - 1) * at::full({n, n}, 1.0 / n, at::kDouble);
  EXPECT_LT(max_diff(got[0], want), 1e-14);
}

TEST(AttentionGradRelevance, LayersChainFirstLayerFirst) {
  at::Tensor a = at::rand({3, 2, 2, 4, 4}, at::kFloat).softmax(/*dim=*/-1);
  at::Tensor g = at::randn({3, 2, 2, 4, 4}, at::kFloat);
  at::Tensor r = at::eye(4, at::kDouble).repeat({2, 1, 1});
  for (int64_t l = 0; l < 3; ++l) {
    at::Tensor abar = (a[l].to(at::kDouble) * g[l].to(at::kDouble)).clamp_min(0).mean(/*dim=*/1);
    r = r + at::bmm(abar, r);
  }
  at::Tensor got = attnscope::attention_grad_relevance(a, g);
  EXPECT_EQ(got.scalar_type(), at::kFloat);
  EXPECT_LT(max_diff(got, r), 1e-5);
}

TEST(AttentionGradRelevance, BadInputsThrowValueOrTypeErrors) {
  at::Tensor a = at::rand({2, 1, 3, 4, 4});
  EXPECT_THROW(attnscope::attention_grad_relevance(a[0], a[0]), c10::ValueError);                   // 4-D
  EXPECT_THROW(attnscope::attention_grad_relevance(a, a[0]), c10::ValueError);                      // shapes
  EXPECT_THROW(attnscope::attention_grad_relevance(a.narrow(-1, 0, 3), a.narrow(-1, 0, 3)), c10::ValueError);
  EXPECT_THROW(attnscope::attention_grad_relevance(a.to(at::kInt), a.to(at::kInt)), c10::TypeError);
}

}  // namespace
