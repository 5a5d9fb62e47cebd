// detail::has_nonfinite (the door checks' one-pass scan of CPU tensors) against ATen's isnan/isinf on every
// floating dtype: one special value at every position of contiguous, row-strided and column-strided tensors, with
// -inf allowed or not, and the error path's element mask.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <limits>
#include <vector>

#include "nonfinite.h"

namespace {

using attnscope::detail::has_nonfinite;
using attnscope::detail::nonfinite_mask;

bool aten_says(const at::Tensor& t, bool allow_neg_inf) {
  const at::Tensor bad = allow_neg_inf ? at::isnan(t) | at::isposinf(t) : ~at::isfinite(t);
  return bad.any().item<bool>();
}

TEST(NonFinite, MatchesAtenEverywhere) {
  const double specials[] = {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                             -std::numeric_limits<double>::infinity(), 6e4, -0.0};
  for (at::ScalarType dtype : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16}) {
    const at::Tensor base = at::randn({3, 5, 7}, at::TensorOptions().dtype(at::kDouble)).to(dtype);
    // Contiguous, a slice whose rows are strided, and a transpose whose last dimension is strided.
    const at::Tensor views[] = {base, base.narrow(2, 1, 5), base.transpose(1, 2)};
    EXPECT_FALSE(has_nonfinite(base, false)) << dtype;
    for (int v = 0; v < 3; ++v) {
      for (int64_t i = 0; i < views[v].numel(); i += 3) {
        for (double value : specials) {
          // A fresh copy of the view's storage layout, so each case has one special value.
          at::Tensor t = v == 0 ? base.clone() : v == 1 ? base.clone().narrow(2, 1, 5) : base.clone().transpose(1, 2);
          std::vector<int64_t> idx(static_cast<size_t>(t.dim()));
          int64_t rest = i;
          for (int64_t d = t.dim() - 1; d >= 0; --d) {
            idx[static_cast<size_t>(d)] = rest % t.size(d);
            rest /= t.size(d);
          }
          t[idx[0]][idx[1]][idx[2]].fill_(value);
          for (bool allow : {false, true}) {
            EXPECT_EQ(has_nonfinite(t, allow), aten_says(t, allow))
                << dtype << " view " << v << " index " << i << " value " << value << " allow_neg_inf " << allow;
            EXPECT_TRUE(at::equal(nonfinite_mask(t, allow), allow ? at::isnan(t) | at::isposinf(t) : ~at::isfinite(t)))
                << dtype;
          }
        }
      }
    }
  }
}

TEST(NonFinite, EmptyAndScalar) {
  EXPECT_FALSE(has_nonfinite(at::empty({0, 4}), false));
  EXPECT_TRUE(has_nonfinite(at::scalar_tensor(std::numeric_limits<float>::quiet_NaN()), false));
  EXPECT_FALSE(has_nonfinite(at::scalar_tensor(-std::numeric_limits<float>::infinity()), true));
}

}  // namespace
