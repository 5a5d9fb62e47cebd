// The row kernels of row_kernels.h for one CPU capability. CMake compiles this file twice, with
// -DCPU_CAPABILITY=DEFAULT and with -DCPU_CAPABILITY=AVX2 -DCPU_CAPABILITY_AVX2 -mavx2 -mfma (as ATen builds its
// kernels); ATen's Vectorized lives in the inline namespace CPU_CAPABILITY, and so does everything here, so the
// two builds share no symbol. Include nothing here beyond ATen's vec headers: an inline function emitted from
// the AVX2 build could otherwise be picked by the linker for the baseline path.
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

template <typename T>
void tile(const T* a, int64_t lda, int64_t rows, const T* b, int64_t depth, T scale, T* c, int64_t ldc,
          int64_t cols) {
  using V = Vectorized<T>;
  constexpr int64_t W = V::size();
  static_assert(2 * W == panel_width<T>(), "a panel is two vectors");
  const T* ar[kTileRows];
  for (int r = 0; r < kTileRows; ++r) ar[r] = a + std::min<int64_t>(r, rows - 1) * lda;  // spare rows repeat
  V lo[kTileRows], hi[kTileRows];
  for (int r = 0; r < kTileRows; ++r) lo[r] = hi[r] = V(T(0));
  for (int64_t d = 0; d < depth; ++d) {
    const V b0 = V::loadu(b + d * 2 * W), b1 = V::loadu(b + d * 2 * W + W);
    for (int r = 0; r < kTileRows; ++r) {
      const V x(ar[r][d]);
      lo[r] = at::vec::fmadd(x, b0, lo[r]);
      hi[r] = at::vec::fmadd(x, b1, hi[r]);
    }
  }
  const V s(scale);
  for (int64_t r = 0; r < rows; ++r) {
    T* out = c + r * ldc;
    if (cols == 2 * W) {
      (lo[r] * s).store(out);
      (hi[r] * s).store(out + W);
    } else {
      T buf[2 * W];
      (lo[r] * s).store(buf);
      (hi[r] * s).store(buf + W);
      std::memcpy(out, buf, static_cast<size_t>(cols) * sizeof(T));
    }
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
    const V e = (V::loadu(row + j) - vtop).exp();
    e.store(row + j);
    vsum = vsum + e;
  }
  if (body < n) {
    const V e = V::set(V(T(0)), (V::loadu(row + body, n - body) - vtop).exp(), n - body);
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

// row_kernels_DEFAULT() / row_kernels_AVX2(), declared in row_kernels.cpp.
const RowKernels& ATTNSCOPE_CONCAT(row_kernels_, CPU_CAPABILITY)() {
  static const RowKernels kernels{{&tile<float>, &softmax<float>},
                                  {&tile<double>, &softmax<double>},
#if defined(CPU_CAPABILITY_AVX2)
                                  "AVX2"};
#else
                                  "DEFAULT"};
#endif
  return kernels;
}

}  // namespace CPU_CAPABILITY
}  // namespace detail
}  // namespace attnscope
