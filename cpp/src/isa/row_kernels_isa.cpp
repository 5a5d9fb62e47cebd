// The row kernels of row_kernels.h for one CPU capability. CMake compiles this file up to three times, with
// -DCPU_CAPABILITY=DEFAULT, -DCPU_CAPABILITY=AVX2 -DCPU_CAPABILITY_AVX2 -mavx2 -mfma and -DCPU_CAPABILITY=AVX512
// -DCPU_CAPABILITY_AVX512 -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma (as ATen builds its kernels); ATen's
// Vectorized lives in the inline namespace CPU_CAPABILITY, and so does everything here, so the builds share no
// symbol. Include nothing here beyond ATen's vec headers: an inline function emitted from
// a vector build could otherwise be picked by the linker for the baseline path.
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "../row_kernels.h"

namespace attnscope {
namespace detail {
inline namespace CPU_CAPABILITY {
namespace {

using at::vec::Vectorized;

// The tile loop: acc[2 r + v] = sum_d a_r[d] * B_v[d] for six rows r and two vectors v, B_v's row d at
// b_v + d * step, with one named accumulator per vector (no array: GCC keeps an array of Vectorized in memory and
// stores every accumulator back on each step of the depth loop, which halves the kernel's speed). Every output
// element gets one fused multiply-add per term in increasing d in every build, so AVX-512 and AVX2 give one result,
// never depending on the rows or columns that share a tile. Twelve accumulators keep both FMA ports busy.
template <typename T>
void tile_loop(const T* const* ar, const T* b0p, const T* b1p, int64_t step, int64_t depth, Vectorized<T>* acc) {
  using V = Vectorized<T>;
  const T *a0 = ar[0], *a1 = ar[1], *a2 = ar[2], *a3 = ar[3], *a4 = ar[4], *a5 = ar[5];
  V c00(T(0)), c01(T(0)), c10(T(0)), c11(T(0)), c20(T(0)), c21(T(0));
  V c30(T(0)), c31(T(0)), c40(T(0)), c41(T(0)), c50(T(0)), c51(T(0));
  for (int64_t d = 0; d < depth; ++d) {
    const V b0 = V::loadu(b0p + d * step), b1 = V::loadu(b1p + d * step);
    const auto row = [&](T x, V& lo, V& hi) {  // inlined: the accumulators stay in registers
      lo = at::vec::fmadd(V(x), b0, lo);
      hi = at::vec::fmadd(V(x), b1, hi);
    };
    row(a0[d], c00, c01);
    row(a1[d], c10, c11);
    row(a2[d], c20, c21);
    row(a3[d], c30, c31);
    row(a4[d], c40, c41);
    row(a5[d], c50, c51);
  }
  const V out[2 * kTileRows] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
  std::copy(out, out + 2 * kTileRows, acc);
}

// Scaled accumulators of one panel into rows of c (cols <= panel): row r's vectors at acc[stride * r + v].
template <typename T>
void store_panel(const Vectorized<T>* acc, int64_t stride, int64_t rows, T scale, T* c, int64_t ldc, int64_t cols) {
  using V = Vectorized<T>;
  constexpr int64_t W = V::size(), P = panel_width<T>(), kVectors = P / W;
  const V s(scale);
  for (int64_t r = 0; r < rows; ++r) {
    if (cols == P) {  // a whole panel: straight to c (a variable-size memcpy is a library call)
      for (int64_t v = 0; v < kVectors; ++v) (acc[stride * r + v] * s).store(c + r * ldc + v * W);
      continue;
    }
    T buf[P];
    for (int64_t v = 0; v < kVectors; ++v) (acc[stride * r + v] * s).store(buf + v * W);
    std::memcpy(c + r * ldc, buf, static_cast<size_t>(cols) * sizeof(T));
  }
}

template <typename T>
void tile(const T* a, int64_t lda, int64_t rows, const T* b, int64_t panel_stride, int64_t depth, T scale, T* c,
          int64_t ldc, int64_t cols) {
  using V = Vectorized<T>;
  constexpr int64_t W = V::size(), P = panel_width<T>(), kVectors = P / W;
  static_assert(kTileRows == 6 && (kVectors == 1 || kVectors == 2), "the tile loop takes six rows, 1 or 2 vectors");
  const T* ar[kTileRows];
  for (int r = 0; r < kTileRows; ++r) ar[r] = a + std::min<int64_t>(r, rows - 1) * lda;  // spare rows repeat
  const bool two = cols > P;
  V acc[4 * kTileRows];
  if constexpr (kVectors == 2) {  // a panel is two vectors: one loop per panel
    tile_loop(ar, b, b + W, P, depth, acc);
    if (two) tile_loop(ar, b + panel_stride, b + panel_stride + W, P, depth, acc + 2 * kTileRows);
    store_panel(acc, 2, rows, scale, c, ldc, std::min(cols, P));
    if (two) store_panel(acc + 2 * kTileRows, 2, rows, scale, c + P, ldc, cols - P);
  } else {  // a panel is one vector: both panels in one loop (the second repeats the first when there is none)
    tile_loop(ar, b, two ? b + panel_stride : b, P, depth, acc);
    store_panel(acc, 2, rows, scale, c, ldc, std::min(cols, P));
    if (two) store_panel(acc + 1, 2, rows, scale, c + P, ldc, cols - P);
  }
}

// Horizontal reductions in a fixed lane order.
template <typename T>
T lanes_max(const Vectorized<T>& v) {
  T buf[Vectorized<T>::size()];
  v.store(buf);
  T m = buf[0];
  for (int64_t i = 1; i < Vectorized<T>::size(); ++i) m = std::max(m, buf[i]);
  return m;
}

template <typename T>
T lanes_sum(const Vectorized<T>& v) {
  T buf[Vectorized<T>::size()];
  v.store(buf);
  T s = 0;
  for (int64_t i = 0; i < Vectorized<T>::size(); ++i) s += buf[i];
  return s;
}

// exp as PyTorch's softmax computes it (ATen's LogSoftmaxKernelImpl.h): Vectorized::exp, SLEEF's 1-ulp exp in the
// AVX2 build (symbols libtorch_cpu exports), std::exp lane by lane in the baseline build.
template <typename T>
void softmax(T* row, int64_t n, T sink) {
  using V = Vectorized<T>;
  constexpr int64_t W = V::size();
  constexpr T kNegInf = -std::numeric_limits<T>::infinity();
  const int64_t body = n - n % W;
  V vmax(kNegInf);
  for (int64_t j = 0; j < body; j += W) vmax = at::vec::maximum(vmax, V::loadu(row + j));
  if (body < n) vmax = at::vec::maximum(vmax, V::set(V(kNegInf), V::loadu(row + body, n - body), n - body));
  const T top = std::max(lanes_max(vmax), sink);
  if (top == kNegInf) {  // nothing visible and no sink: zeros, never NaN
    std::fill(row, row + n, T(0));
    return;
  }
  const V vtop(top);
  V vsum(T(0));
  for (int64_t j = 0; j < body; j += W) {
    const V e = (V::loadu(row + j) - vtop).exp_u20();
    e.store(row + j);
    vsum = vsum + e;
  }
  if (body < n) {
    const V e = V::set(V(T(0)), (V::loadu(row + body, n - body) - vtop).exp_u20(), n - body);
    e.store(row + body, n - body);
    vsum = vsum + e;
  }
  T total = lanes_sum(vsum);
  if (sink != kNegInf) total += std::exp(sink - top);
  const V inv(T(1) / total);
  for (int64_t j = 0; j < body; j += W) (V::loadu(row + j) * inv).store(row + j);
  if (body < n) (V::loadu(row + body, n - body) * inv).store(row + body, n - body);
}

}  // namespace

#define ATTNSCOPE_CONCAT_(a, b) a##b
#define ATTNSCOPE_CONCAT(a, b) ATTNSCOPE_CONCAT_(a, b)

// row_kernels_DEFAULT() / row_kernels_AVX2() / row_kernels_AVX512(), declared in row_kernels.cpp.
const RowKernels& ATTNSCOPE_CONCAT(row_kernels_, CPU_CAPABILITY)() {
  static const RowKernels kernels{{&tile<float>, &softmax<float>},
                                  {&tile<double>, &softmax<double>},
#if defined(CPU_CAPABILITY_AVX512)
                                  "AVX512"};
#elif defined(CPU_CAPABILITY_AVX2)
                                  "AVX2"};
#else
                                  "DEFAULT"};
#endif
  return kernels;
}

}  // namespace CPU_CAPABILITY
}  // namespace detail
}  // namespace attnscope
