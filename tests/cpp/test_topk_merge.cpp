// topk_merge against a brute-force sort of every value seen, streamed in blocks.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include "attnscope/topk_merge.h"

namespace {

using attnscope::topk_merge;

// Every (value, key) of unit u over all rows, sorted by value descending then key ascending.
std::vector<std::pair<double, int64_t>> brute(const at::Tensor& all, const at::Tensor& keys, int64_t u) {
  std::vector<std::pair<double, int64_t>> v;
  auto a = all.accessor<float, 2>();
  auto kk = keys.accessor<int64_t, 1>();
  for (int64_t r = 0; r < all.size(0); ++r)
    if (!std::isnan(a[r][u])) v.push_back({a[r][u], kk[r]});
  std::sort(v.begin(), v.end(), [](auto& x, auto& y) { return x.first != y.first ? x.first > y.first : x.second < y.second; });
  return v;
}

void stream_and_check(const at::Tensor& all, int64_t k, int64_t block) {
  const int64_t rows = all.size(0), units = all.size(1);
  const at::Tensor keys = at::arange(rows, at::kLong) * 7 + 3;  // increasing, not contiguous
  at::Tensor v = at::full({units, k}, -std::numeric_limits<float>::infinity());
  at::Tensor kk = at::full({units, k}, -1, at::kLong);
  for (int64_t r0 = 0; r0 < rows; r0 += block) {
    const int64_t r1 = std::min(rows, r0 + block);
    auto out = topk_merge(v, kk, all.slice(0, r0, r1), keys.slice(0, r0, r1));
    // source points at where each kept entry came from
    auto s = out.source.accessor<int64_t, 2>();
    auto ok = out.keys.accessor<int64_t, 2>();
    auto prev = kk.accessor<int64_t, 2>();
    for (int64_t u = 0; u < units; ++u)
      for (int64_t j = 0; j < k; ++j) {
        if (s[u][j] < 0) { EXPECT_EQ(ok[u][j], -1); continue; }
        const int64_t expect = s[u][j] < k ? prev[u][s[u][j]] : keys[r0 + s[u][j] - k].item<int64_t>();
        EXPECT_EQ(ok[u][j], expect);
      }
    v = out.values;
    kk = out.keys;
  }
  auto vv = v.accessor<float, 2>();
  auto ka = kk.accessor<int64_t, 2>();
  for (int64_t u = 0; u < units; ++u) {
    auto ref = brute(all, keys, u);
    for (int64_t j = 0; j < k; ++j) {
      if (j < static_cast<int64_t>(ref.size())) {
        EXPECT_EQ(vv[u][j], static_cast<float>(ref[j].first)) << "unit " << u << " slot " << j;
        EXPECT_EQ(ka[u][j], ref[j].second) << "unit " << u << " slot " << j;
      } else {
        EXPECT_EQ(ka[u][j], -1);
      }
    }
  }
}

TEST(TopkMerge, EqualsBruteForceSortOverBlocks) {
  at::manual_seed(0);
  stream_and_check(at::randn({300, 130}), /*k=*/7, /*block=*/37);
}

TEST(TopkMerge, TiesGoToTheSmallerKey) {
  at::manual_seed(1);
  // Few distinct values: many ties, the (value, key) order decides.
  stream_and_check(at::randint(0, 3, {200, 70}).to(at::kFloat), /*k=*/5, /*block=*/16);
}

TEST(TopkMerge, FewerRowsThanKLeavesEmptySlots) {
  stream_and_check(at::randn({3, 4}), /*k=*/6, /*block=*/2);
}

TEST(TopkMerge, LongBlocksShrinkCandidates) {
  at::manual_seed(2);
  stream_and_check(at::randn({2000, 9}), /*k=*/3, /*block=*/2000);
}

TEST(TopkMerge, NaNIsSkipped) {
  at::Tensor all = at::randn({50, 5});
  all.index_put_({at::indexing::Slice(0, 50, 3), 2}, std::numeric_limits<float>::quiet_NaN());
  stream_and_check(all, /*k=*/4, /*block=*/10);
}

TEST(TopkMerge, RejectsBadShapes) {
  at::Tensor v = at::zeros({4, 2}), k = at::full({4, 2}, -1, at::kLong);
  EXPECT_THROW(topk_merge(v, k, at::zeros({3, 5}), at::zeros({3}, at::kLong)), c10::ValueError);
  EXPECT_THROW(topk_merge(v, k, at::zeros({3, 4}), at::zeros({2}, at::kLong)), c10::ValueError);
  EXPECT_THROW(topk_merge(v, k, at::zeros({3, 4}, at::kDouble), at::zeros({3}, at::kLong)), c10::TypeError);
}

}  // namespace
