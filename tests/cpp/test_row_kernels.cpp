// The row kernels of every build this CPU can run (AVX-512, AVX2, baseline) against plain double loops: tiles at
// every edge (rows 1..6, columns 1..2 panels, depth 0..), softmax with a sink, a fully masked row and tails of every
// length.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "row_kernels.h"

namespace {

using attnscope::detail::kTileRows;
using attnscope::detail::panel_width;
using attnscope::detail::RowKernels;
using attnscope::detail::RowKernelsOf;

std::vector<const RowKernels*> builds() {
  std::vector<const RowKernels*> out;
  for (const char* isa : {"DEFAULT", "AVX2", "AVX512"}) {
    if (const RowKernels* k = attnscope::detail::row_kernels_build(isa)) out.push_back(k);
  }
  return out;
}

template <typename T>
void check_tile(const RowKernelsOf<T>& k, const std::string& isa, double tol) {
  constexpr int64_t W = panel_width<T>();
  std::mt19937 gen(0);
  std::normal_distribution<double> normal;
  for (int64_t rows = 1; rows <= kTileRows; ++rows) {
    for (int64_t cols : {int64_t{1}, W / 2 + 1, W, W + 1, 2 * W - 3, 2 * W}) {
      for (int64_t depth : {0, 1, 7, 33}) {
        // Two panels with a gap between them (panel_stride > depth * W), as a tile over a slice of keys sees them.
        const int64_t lda = depth + 3, ldc = 2 * W + 5, stride = (depth + 2) * W;
        std::vector<T> a(static_cast<size_t>(rows * lda)), b(static_cast<size_t>(2 * stride + W));
        for (auto& x : a) x = static_cast<T>(normal(gen));
        for (auto& x : b) x = static_cast<T>(normal(gen));
        std::vector<T> c(static_cast<size_t>(rows * ldc), T(-7));
        k.tile(a.data(), lda, rows, b.data(), stride, depth, T(0.5), c.data(), ldc, cols);
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t j = 0; j < ldc; ++j) {
            const double got = c[static_cast<size_t>(r * ldc + j)];
            if (j >= cols) {
              EXPECT_EQ(got, -7.0) << isa << ": column " << j << " past cols=" << cols << " was written";
              continue;
            }
            double want = 0;
            for (int64_t d = 0; d < depth; ++d) {
              want += double(a[r * lda + d]) * double(b[(j / W) * stride + d * W + j % W]);
            }
            EXPECT_NEAR(got, 0.5 * want, tol) << isa << " rows=" << rows << " cols=" << cols << " depth=" << depth;
          }
        }
      }
    }
  }
}

template <typename T>
void check_softmax(const RowKernelsOf<T>& k, const std::string& isa, double tol) {
  constexpr T kNegInf = -std::numeric_limits<T>::infinity();
  std::mt19937 gen(1);
  std::normal_distribution<double> normal(0.0, 3.0);
  for (int64_t n = 1; n <= 37; ++n) {
    for (bool sink : {false, true}) {
      std::vector<T> row(static_cast<size_t>(n));
      for (auto& x : row) x = static_cast<T>(normal(gen));
      if (n > 1) row[0] = kNegInf;  // a masked key (a row of one masked key is the fully masked case below)
      const T s = sink ? T(1.5) : kNegInf;
      double top = sink ? 1.5 : -INFINITY, total = 0;
      for (T x : row) top = std::max(top, double(x));
      for (T x : row) total += std::exp(double(x) - top);
      if (sink) total += std::exp(1.5 - top);
      std::vector<T> want_row(row.begin(), row.end());
      k.softmax(row.data(), n, s);
      for (int64_t j = 0; j < n; ++j) {
        EXPECT_NEAR(double(row[j]), std::exp(double(want_row[j]) - top) / total, tol) << isa << " n=" << n;
      }
    }
  }
  std::vector<T> masked(19, kNegInf);
  k.softmax(masked.data(), 19, kNegInf);
  for (T x : masked) EXPECT_EQ(x, T(0)) << isa << ": a fully masked row must be zeros, not NaN";
}

TEST(RowKernels, EveryBuildMatchesPlainLoops) {
  const auto all = builds();
  ASSERT_FALSE(all.empty());
  for (const RowKernels* k : all) {
    check_tile(k->f32, k->isa, 1e-4);
    check_tile(k->f64, k->isa, 1e-12);
    check_softmax(k->f32, k->isa, 1e-6);
    check_softmax(k->f64, k->isa, 1e-14);
  }
}

// AVX2 and AVX-512 tiles give one result: one fused multiply-add per term in increasing d in both.
TEST(RowKernels, VectorBuildsGiveOneTile) {
  const RowKernels* avx2 = attnscope::detail::row_kernels_build("AVX2");
  const RowKernels* avx512 = attnscope::detail::row_kernels_build("AVX512");
  if (avx2 == nullptr || avx512 == nullptr) GTEST_SKIP() << "this CPU cannot run both vector builds";
  constexpr int64_t W = panel_width<float>();
  std::mt19937 gen(3);
  std::normal_distribution<float> normal;
  const int64_t depth = 64, lda = depth, ldc = 2 * W;
  std::vector<float> a(static_cast<size_t>(kTileRows * lda)), b(static_cast<size_t>(2 * depth * W));
  for (auto& x : a) x = normal(gen);
  for (auto& x : b) x = normal(gen);
  std::vector<float> c2(static_cast<size_t>(kTileRows * ldc)), c512(c2.size());
  avx2->f32.tile(a.data(), lda, kTileRows, b.data(), depth * W, depth, 0.125f, c2.data(), ldc, 2 * W);
  avx512->f32.tile(a.data(), lda, kTileRows, b.data(), depth * W, depth, 0.125f, c512.data(), ldc, 2 * W);
  EXPECT_EQ(c2, c512);
}

TEST(RowKernels, UnknownBuildIsNull) { EXPECT_EQ(attnscope::detail::row_kernels_build("SSE9"), nullptr); }

}  // namespace
