// The ops' door checks (attnscope/checks.h): devices, NaN and infinity, degenerate sizes, bounded work.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <chrono>
#include <limits>
#include <optional>
#include <string>

#include "attnscope/checks.h"

namespace {

using attnscope::AttentionSpec;

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

// The message of the c10::Error `fn` throws ("" when it does not throw).
template <typename F>
std::string error_of(F fn) {
  try {
    fn();
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  return "";
}

TEST(Checks, AttentionAcceptsGoodInputsAndEmptySizes) {
  const AttentionSpec s{0.5, true, 0, 0.0, 0};
  EXPECT_EQ(error_of([&] { attnscope::check_attention_probs(at::randn({2, 4, 3, 8}), at::randn({2, 2, 5, 8}),
                                                           std::nullopt, s, at::zeros({4})); }), "");
  for (auto shape : {std::vector<int64_t>{0, 2, 3, 8}, {1, 2, 0, 8}}) {
    EXPECT_EQ(error_of([&] { attnscope::check_attention_probs(at::randn(shape), at::randn(shape), std::nullopt, s,
                                                             std::nullopt); }), "");
  }
}

TEST(Checks, AttentionRefusesMixedDevicesWithBothNames) {
  const AttentionSpec s{0.5, false, 0, 0.0, 0};
  const at::Tensor q = at::randn({1, 2, 3, 4}), k = at::randn({1, 2, 3, 4});
  const at::Tensor meta_mask = at::empty({1, 1, 3, 3}, at::TensorOptions().dtype(at::kBool).device(at::kMeta));
  const std::string msg = error_of([&] { attnscope::check_attention_probs(q, k, meta_mask, s, std::nullopt); });
  EXPECT_NE(msg.find("one device"), std::string::npos) << msg;
  EXPECT_NE(msg.find("mask on meta"), std::string::npos) << msg;
  EXPECT_THROW(attnscope::check_attention_probs(q.to(at::kMeta), k, std::nullopt, s, std::nullopt), c10::ValueError);
}

TEST(Checks, AttentionRefusesNonFiniteInputsNamingTheEntry) {
  const AttentionSpec s{0.5, false, 0, 0.0, 0};
  const at::Tensor q = at::randn({1, 2, 3, 4}), k = at::randn({1, 2, 3, 4});
  at::Tensor bad = q.clone();
  bad.index_put_({0, 1, 2, 3}, kNaN);
  const std::string msg = error_of([&] { attnscope::check_attention_probs(bad, k, std::nullopt, s, std::nullopt); });
  EXPECT_NE(msg.find("q must be finite, got nan at index [0, 1, 2, 3]"), std::string::npos) << msg;
  EXPECT_THROW(attnscope::check_attention_probs(q, k * kInf, std::nullopt, s, std::nullopt), c10::ValueError);
  EXPECT_THROW(attnscope::check_attention_probs(q, k, std::nullopt, s, at::full({2}, kNaN)), c10::ValueError);
  at::Tensor mask = at::zeros({3, 3});
  mask.index_put_({0, 1}, -kInf);  // masks a key: fine
  EXPECT_EQ(error_of([&] { attnscope::check_attention_probs(q, k, mask, s, std::nullopt); }), "");
  mask.index_put_({0, 2}, kInf);
  EXPECT_THROW(attnscope::check_attention_probs(q, k, mask, s, std::nullopt), c10::ValueError);
}

TEST(Checks, ZeroHeadsAndHeadDimAreRefusedBySiblingsAlike) {
  const AttentionSpec s{0.5, false, 0, 0.0, 0};
  const at::Tensor no_heads = at::randn({1, 0, 3, 4});
  EXPECT_THROW(attnscope::check_attention_probs(no_heads, at::randn({1, 1, 3, 4}), std::nullopt, s, std::nullopt),
               c10::ValueError);
  EXPECT_THROW(attnscope::check_attention_probs_reduced(no_heads, at::randn({1, 1, 3, 4}), std::nullopt, s,
                                                        std::nullopt, std::nullopt, "mean", 0, std::nullopt),
               c10::ValueError);
  // The layer output's values: one row per key of each kv head, floating.
  const at::Tensor q = at::randn({1, 2, 3, 4}), k = at::randn({1, 1, 5, 4});
  EXPECT_NO_THROW(attnscope::check_attention_probs_reduced(q, k, std::nullopt, s, std::nullopt, std::nullopt, "mean",
                                                           0, at::randn({1, 1, 5, 7})));
  EXPECT_THROW(attnscope::check_attention_probs_reduced(q, k, std::nullopt, s, std::nullopt, std::nullopt, "mean", 0,
                                                        at::randn({1, 2, 5, 7})),
               c10::ValueError);
  EXPECT_THROW(attnscope::check_attention_probs_reduced(q, k, std::nullopt, s, std::nullopt, std::nullopt, "mean", 0,
                                                        at::ones({1, 1, 5, 7}, at::kLong)),
               c10::TypeError);
  EXPECT_THROW(attnscope::check_attention_head_stats(at::randn({1, 2, 3, 0}), at::randn({1, 2, 3, 0}), std::nullopt,
                                                     s, std::nullopt, std::nullopt, std::nullopt, 0),
               c10::ValueError);
  EXPECT_THROW(attnscope::check_attention_grad_relevance(at::rand({1, 1, 0, 3, 3}), at::rand({1, 1, 0, 3, 3})),
               c10::ValueError);
  EXPECT_THROW(attnscope::check_rollout(at::rand({1, 1, 0, 3, 3}), 0, std::nullopt), c10::ValueError);
}

TEST(Checks, GaussLegendreSizeIsBoundedAndRefusedFast) {
  const auto start = std::chrono::steady_clock::now();
  const std::string msg = error_of([] { attnscope::check_quadrature_rule("gausslegendre", 1000000); });
  EXPECT_NE(msg.find("at most 4096 points"), std::string::npos) << msg;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 1.0);
  EXPECT_EQ(error_of([] { attnscope::check_quadrature_rule("riemann_left", 1000000); }), "");  // O(n)
  EXPECT_THROW(attnscope::check_composite_gauss_legendre(at::tensor({0.0, 1.0}, at::kDouble), 5000), c10::ValueError);
}

TEST(Checks, QuadratureSegmentsMustBeFiniteIncreasingAndInside) {
  const at::Tensor errors = at::ones({2}, at::kDouble);
  EXPECT_EQ(error_of([&] { attnscope::check_refine_segments(at::tensor({0.0, 0.5, 1.0}, at::kDouble), errors, 0.1, 3); }),
            "");
  EXPECT_THROW(attnscope::check_refine_segments(at::tensor({0.0, kNaN, 1.0}, at::kDouble), errors, 0.1, 3),
               c10::ValueError);
  EXPECT_THROW(attnscope::check_refine_segments(at::tensor({0.0, 0.5, 2.0}, at::kDouble), errors, 0.1, 3),
               c10::ValueError);
  EXPECT_THROW(attnscope::check_refine_segments(at::tensor({0.0, 0.5, 1.0}, at::kDouble), errors * kNaN, 0.1, 3),
               c10::ValueError);
  EXPECT_THROW(attnscope::check_refine_segments(at::tensor({0.0, 0.5, 1.0}, at::kDouble), errors, kNaN, 3),
               c10::ValueError);
}

TEST(Checks, VocabProjectionRefusesNonFiniteRows) {
  const at::Tensor hidden = at::randn({1, 2, 4}), weight = at::randn({5, 4});
  const at::Tensor targets = at::zeros({2, 0}, at::kLong);
  EXPECT_EQ(error_of([&] { attnscope::check_vocab_projection(hidden, weight, std::nullopt, std::nullopt, targets, 2,
                                                            0.0, 0, 0); }), "");
  EXPECT_THROW(attnscope::check_vocab_projection(hidden * kNaN, weight, std::nullopt, std::nullopt, targets, 2, 0.0, 0,
                                                 0),
               c10::ValueError);
}

}  // namespace
