// Internal to the core: the right-hand operands of the row kernels' tiles, packed once per call into panels of
// panel_width<T>() columns (zero-padded), so a tile reads a panel's row with two AVX2 loads or one AVX-512 load per
// step.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>

#include "row_kernels.h"

namespace attnscope {
namespace detail {

// Panels of one [depth, n] matrix per (batch, head) of a 4-D source: element (d, c) of matrix (b, h) is
// src[b * sb + h * sh + d * sd + c * sc]. Panel p holds columns [p * W, p * W + W) as [depth][W].
template <typename T>
struct Panels {
  at::Tensor holder;  // [batch, heads, n_panels, depth, W]
  const T* data = nullptr;
  int64_t n_panels = 0, depth = 0;

  const T* panel(int64_t b, int64_t h, int64_t heads, int64_t p) const {
    constexpr int64_t W = panel_width<T>();
    return data + ((b * heads + h) * n_panels + p) * depth * W;
  }
};

template <typename T>
Panels<T> pack_panels(const T* src, int64_t batch, int64_t heads, int64_t depth, int64_t n, int64_t sb,
                      int64_t sh, int64_t sd, int64_t sc, const at::TensorOptions& options) {
  constexpr int64_t W = panel_width<T>();
  Panels<T> p;
  p.n_panels = (n + W - 1) / W;
  p.depth = depth;
  p.holder = at::empty({batch, heads, p.n_panels, depth, W}, options);
  T* dst = p.holder.template mutable_data_ptr<T>();
  at::parallel_for(0, batch * heads, /*grain_size=*/1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const T* s = src + (t / heads) * sb + (t % heads) * sh;
      T* o = dst + t * p.n_panels * depth * W;
      for (int64_t pi = 0; pi < p.n_panels; ++pi) {
        const int64_t c0 = pi * W, cols = std::min(W, n - c0);
        for (int64_t d = 0; d < depth; ++d, o += W) {
          for (int64_t c = 0; c < cols; ++c) o[c] = s[d * sd + (c0 + c) * sc];
          std::fill(o + cols, o + W, T(0));
        }
      }
    }
  });
  p.data = dst;
  return p;
}

// Keys as panels of K^T: depth head_dim, columns the keys.
template <typename T>
Panels<T> key_panels(const at::Tensor& k) {
  return pack_panels<T>(k.const_data_ptr<T>(), k.size(0), k.size(1), /*depth=*/k.size(3), /*n=*/k.size(2),
                        k.stride(0), k.stride(1), k.stride(3), k.stride(2), k.options());
}

// Values as panels of V: depth the keys, columns head_dim.
template <typename T>
Panels<T> value_panels(const at::Tensor& v) {
  return pack_panels<T>(v.const_data_ptr<T>(), v.size(0), v.size(1), /*depth=*/v.size(2), /*n=*/v.size(3),
                        v.stride(0), v.stride(1), v.stride(2), v.stride(3), v.options());
}

}  // namespace detail
}  // namespace attnscope
