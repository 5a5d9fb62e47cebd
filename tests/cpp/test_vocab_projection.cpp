// The streaming vocabulary projection against the full softmax of the same logits (ATen, float64).
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "attnscope/vocab_projection.h"

namespace {

struct Inputs {
  at::Tensor hidden, weight, bias, reference, targets;
};

Inputs make_inputs() {
  at::manual_seed(0);
  const auto opt = at::TensorOptions().dtype(at::kDouble);
  Inputs in;
  in.hidden = at::randn({3, 5, 8}, opt);
  in.weight = at::randn({37, 8}, opt);
  in.bias = at::randn({37}, opt);
  in.reference = at::randn({5, 8}, opt);
  in.targets = at::randint(0, 37, {5, 2}, at::TensorOptions().dtype(at::kLong));
  return in;
}

TEST(VocabProjection, MatchesFullSoftmax) {
  Inputs in = make_inputs();
  const double cap = 2.5;
  attnscope::VocabProjection r =
      attnscope::vocab_projection(in.hidden, in.weight, in.bias, in.reference, in.targets, 4, cap, 7, 2);
  auto capped = [&](const at::Tensor& z) { return at::tanh(z / cap) * cap; };
  at::Tensor z = capped(at::matmul(in.hidden, in.weight.t()) + in.bias);  // [3, 5, 37]
  at::Tensor lp = at::log_softmax(z, -1);
  at::Tensor lq = at::log_softmax(capped(at::matmul(in.reference, in.weight.t()) + in.bias), -1);  // [5, 37]
  EXPECT_TRUE(at::allclose(r.logsumexp, at::logsumexp(z, -1), 1e-12, 1e-12));
  EXPECT_TRUE(at::allclose(r.entropy, -(lp.exp() * lp).sum(-1), 1e-10, 1e-12));
  EXPECT_TRUE(at::allclose(r.kl, (lq.exp() * (lq - lp)).sum(-1), 1e-10, 1e-12));
  auto top = at::topk(lp, 4, -1);
  EXPECT_TRUE(at::equal(r.topk_ids, std::get<1>(top)));
  EXPECT_TRUE(at::allclose(r.topk_logprobs, std::get<0>(top), 1e-12, 1e-12));
  at::Tensor idx = in.targets.unsqueeze(0).expand({3, 5, 2});
  at::Tensor tz = z.gather(-1, idx);
  EXPECT_TRUE(at::allclose(r.target_logprobs, lp.gather(-1, idx), 1e-12, 1e-12));
  at::Tensor ranks = (z.unsqueeze(-2) > tz.unsqueeze(-1)).sum(-1);  // [3, 5, 2]
  EXPECT_TRUE(at::equal(r.target_ranks, ranks));
}

TEST(VocabProjection, ChunkAndBlockSizeInvariant) {
  Inputs in = make_inputs();
  auto a = attnscope::vocab_projection(in.hidden, in.weight, in.bias, in.reference, in.targets, 5, 0.0, 37, 5);
  for (int64_t chunk : {1, 3, 16}) {
    auto b = attnscope::vocab_projection(in.hidden, in.weight, in.bias, in.reference, in.targets, 5, 0.0, chunk, 0);
    EXPECT_TRUE(at::equal(a.topk_ids, b.topk_ids));
    EXPECT_TRUE(at::allclose(a.topk_logprobs, b.topk_logprobs, 1e-13, 1e-13));
    EXPECT_TRUE(at::allclose(a.kl, b.kl, 1e-12, 1e-13));
    EXPECT_TRUE(at::equal(a.target_ranks, b.target_ranks));
  }
}

TEST(VocabProjection, RejectsBadShapesAndK) {
  Inputs in = make_inputs();
  EXPECT_THROW(attnscope::vocab_projection(in.hidden, in.weight, in.bias, std::nullopt, in.targets, 0, 0.0, 0, 0),
               c10::Error);
  EXPECT_THROW(attnscope::vocab_projection(in.hidden, in.weight, in.bias, std::nullopt, in.targets, 38, 0.0, 0, 0),
               c10::Error);
  EXPECT_THROW(attnscope::vocab_projection(in.hidden, in.weight.narrow(1, 0, 7), std::nullopt, std::nullopt,
                                           in.targets, 3, 0.0, 0, 0),
               c10::Error);
  EXPECT_THROW(attnscope::vocab_projection(in.hidden, in.weight, in.bias, std::nullopt, in.targets + 37, 3, 0.0, 0,
                                           0),
               c10::Error);
}

}  // namespace
