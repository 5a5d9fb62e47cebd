// Internal to the core: validation and the row kernel shared by the attention_probs drivers.
#pragma once

#include <ATen/ATen.h>
#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "attnscope/attention_probs.h"
#include "panels.h"
#include "row_kernels.h"

namespace attnscope {
namespace detail {


struct Geometry {
  int64_t batch, heads, kv_heads, group, q_len, k_len, head_dim;
  int64_t offset;  // absolute position of query row 0 (queries aligned to the end of the keys)
};

inline at::ScalarType compute_dtype(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

inline Geometry check_qk(const at::Tensor& q, const at::Tensor& k, const AttentionSpec& spec) {
  TORCH_CHECK_VALUE(q.dim() == 4, "q must be [batch, q_heads, q_len, head_dim], got a ", q.dim(),
                    "-D tensor of shape ", q.sizes());
  TORCH_CHECK_VALUE(k.dim() == 4, "k must be [batch, kv_heads, k_len, head_dim], got a ", k.dim(),
                    "-D tensor of shape ", k.sizes());
  TORCH_CHECK_TYPE(at::isFloatingType(q.scalar_type()), "q must be float16, bfloat16, float32 or float64, got ",
                   q.scalar_type());
  TORCH_CHECK_TYPE(at::isFloatingType(k.scalar_type()), "k must be float16, bfloat16, float32 or float64, got ",
                   k.scalar_type());
  TORCH_CHECK_VALUE(q.device() == k.device(), "q and k must be on one device, got q on ", q.device(), " and k on ",
                    k.device());
  TORCH_CHECK_VALUE(q.size(0) == k.size(0), "q and k must have the same batch size, got q ", q.sizes(), " and k ",
                    k.sizes());
  TORCH_CHECK_VALUE(q.size(3) == k.size(3), "head_dim of q and k differ: q has head_dim ", q.size(3), " (shape ",
                    q.sizes(), "), k has head_dim ", k.size(3), " (shape ", k.sizes(), ")");
  TORCH_CHECK_VALUE(k.size(1) > 0 && q.size(1) % k.size(1) == 0, "q_heads must be a multiple of kv_heads, got q_heads=",
                    q.size(1), " and kv_heads=", k.size(1));
  TORCH_CHECK_VALUE(spec.query_chunk >= 0, "query_chunk must be >= 0 (0 = automatic), got ", spec.query_chunk);
  TORCH_CHECK_VALUE(spec.window >= 0, "window must be >= 0 (0 = no sliding window), got ", spec.window);
  TORCH_CHECK_VALUE(std::isfinite(spec.softcap) && spec.softcap >= 0.0, "softcap must be >= 0 (0 = off), got ",
                    spec.softcap);
  TORCH_CHECK_VALUE(std::isfinite(spec.scale), "scale must be finite, got ", spec.scale);
  Geometry g{q.size(0), q.size(1), k.size(1), q.size(1) / k.size(1), q.size(2), k.size(2), q.size(3),
             k.size(2) - q.size(2)};
  TORCH_CHECK_VALUE(!(spec.is_causal || spec.window > 0) || g.offset >= 0,
                    "causal or windowed attention needs q_len <= k_len (queries are aligned to the end of the keys), "
                    "got q_len=", g.q_len, " and k_len=", g.k_len);
  return g;
}

inline void check_sinks(const std::optional<at::Tensor>& sinks, const at::Tensor& q) {
  if (!sinks) return;
  TORCH_CHECK_VALUE(sinks->dim() == 1 && sinks->size(0) == q.size(1), "sinks must be [q_heads] = [", q.size(1),
                    "], got shape ", sinks->sizes());
  TORCH_CHECK_TYPE(at::isFloatingType(sinks->scalar_type()), "sinks must be a floating tensor, got ",
                   sinks->scalar_type());
  TORCH_CHECK_VALUE(sinks->device() == q.device(), "sinks must be on ", q.device(), ", got ", sinks->device());
}

// The mask as a strided 4-D view (broadcast dimensions have stride 0), in bool or the compute dtype.
struct MaskView {
  at::Tensor holder;  // keeps the converted tensor alive
  bool present = false, is_bool = false;
  int64_t sb = 0, sh = 0, sq = 0, sk = 0;
};

inline MaskView prepare_mask(const std::optional<at::Tensor>& mask, const Geometry& g, at::ScalarType dtype,
                      const at::Device& device) {
  MaskView view;
  if (!mask) return view;
  at::Tensor m = *mask;
  TORCH_CHECK_VALUE(m.dim() >= 2 && m.dim() <= 4,
                    "mask must be broadcastable to [batch, 1 or q_heads, q_len, k_len] with 2 to 4 dimensions, got a ",
                    m.dim(), "-D tensor of shape ", m.sizes());
  TORCH_CHECK_TYPE(m.scalar_type() == at::kBool || at::isFloatingType(m.scalar_type()),
                   "mask must be bool (True = attend) or an additive float mask, got ", m.scalar_type());
  TORCH_CHECK_VALUE(m.device() == device, "mask must be on ", device, ", got ", m.device());
  while (m.dim() < 4) m = m.unsqueeze(0);
  const int64_t want[4] = {g.batch, g.heads, g.q_len, g.k_len};
  for (int d = 0; d < 4; ++d) {
    TORCH_CHECK_VALUE(m.size(d) == 1 || m.size(d) == want[d], "mask of shape ", mask->sizes(),
                      " is not broadcastable to [batch=", g.batch, ", 1 or q_heads=", g.heads, ", q_len=", g.q_len,
                      ", k_len=", g.k_len, "]");
  }
  view.is_bool = m.scalar_type() == at::kBool;
  if (!view.is_bool) m = m.to(dtype);
  view.holder = m.expand({g.batch, g.heads, g.q_len, g.k_len});
  view.present = true;
  view.sb = view.holder.stride(0);
  view.sh = view.holder.stride(1);
  view.sq = view.holder.stride(2);
  view.sk = view.holder.stride(3);
  return view;
}

// A tensor whose last dimension is contiguous, so rows map onto Eigen with an outer stride.
inline at::Tensor rows_contiguous(const at::Tensor& t, at::ScalarType dtype) {
  at::Tensor r = t.to(dtype);
  return r.stride(-1) == 1 ? r : r.contiguous();
}

template <typename T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using ConstRows = Eigen::Map<const RowMatrix<T>, 0, Eigen::OuterStride<>>;
template <typename T>
using Rows = Eigen::Map<RowMatrix<T>, 0, Eigen::OuterStride<>>;

// Computes logits and probabilities for rows [q0, q1) of one (batch, head). Logits come from the row kernels'
// tiles (kTileRows query rows against one panel of keys, each (query, key) pair summed over head_dim in increasing
// order with fused multiply-adds), so a row's values never depend on which rows share its chunk or its tile.
template <typename T>
struct ProbRows {
  Geometry g;
  AttentionSpec spec;
  const T* q;
  int64_t qsb, qsh, qsl;
  const T* k;
  int64_t ksb, ksh, ksl;
  const MaskView* mask;
  const T* sinks;  // nullptr when absent
  Panels<T> keys;  // K^T in panels, per (batch, kv head)
  const RowKernelsOf<T>* kernels;

  ConstRows<T> q_rows(int64_t b, int64_t h, int64_t q0, int64_t n) const {
    return ConstRows<T>(q + b * qsb + h * qsh + q0 * qsl, n, g.head_dim, Eigen::OuterStride<>(qsl));
  }
  ConstRows<T> k_rows(int64_t b, int64_t h) const {
    return ConstRows<T>(k + b * ksb + (h / g.group) * ksh, g.k_len, g.head_dim, Eigen::OuterStride<>(ksl));
  }

  // The keys query row i sees: [lo(i), hi(i)); both never decrease with i.
  int64_t hi(int64_t i) const {
    return (spec.is_causal || spec.window > 0) ? std::clamp<int64_t>(i + g.offset + 1, 0, g.k_len) : g.k_len;
  }
  int64_t lo(int64_t i) const {
    return spec.window > 0 ? std::clamp<int64_t>(i + g.offset - spec.window + 1, 0, hi(i)) : 0;
  }

  // Scaled logits of rows [i0, i1) (at most kTileRows) for the key panels covering [key0, key1), into `out`
  // (row i at out + (i - i0) * ld, key j at column j). Columns of those panels outside [key0, key1) are written too.
  void tile_logits(int64_t b, int64_t h, int64_t i0, int64_t i1, int64_t key0, int64_t key1, T* out,
                   int64_t ld) const {
    constexpr int64_t W = panel_width<T>();
    const T* qi = q + b * qsb + h * qsh + i0 * qsl;
    for (int64_t p = key0 / W; p * W < key1; p += kTilePanels) {
      kernels->tile(qi, qsl, i1 - i0, keys.panel(b, h / g.group, g.kv_heads, p), g.head_dim * W, g.head_dim,
                    static_cast<T>(spec.scale), out + p * W, ld, std::min(kTilePanels * W, g.k_len - p * W));
    }
  }

  // Scaled logits q.k * scale before soft-capping and masking, every key, into `out` (row stride ld).
  void raw_logits(int64_t b, int64_t h, int64_t q0, int64_t q1, T* out, int64_t ld) const {
    for (int64_t i0 = q0; i0 < q1; i0 += kTileRows) {
      tile_logits(b, h, i0, std::min(q1, i0 + kTileRows), 0, g.k_len, out + (i0 - q0) * ld, ld);
    }
  }

  // Probabilities for rows [q0, q1) into `out` (row stride ld). Logits are computed only for the key panels that
  // causality and the window leave visible; everything else is zero.
  void operator()(int64_t b, int64_t h, int64_t q0, int64_t q1, T* out, int64_t ld) const {
    for (int64_t i0 = q0; i0 < q1; i0 += kTileRows) {
      const int64_t i1 = std::min(q1, i0 + kTileRows);
      tile_logits(b, h, i0, i1, lo(i0), hi(i1 - 1), out + (i0 - q0) * ld, ld);
      for (int64_t i = i0; i < i1; ++i) finish_row(b, h, i, out + (i - q0) * ld);
    }
  }

  // Soft-cap, mask and softmax of row i's visible logits; zeros elsewhere.
  void finish_row(int64_t b, int64_t h, int64_t i, T* row) const {
    constexpr T kNegInf = -std::numeric_limits<T>::infinity();
    const int64_t l = lo(i), r = hi(i);
    std::fill(row, row + l, T(0));
    std::fill(row + r, row + g.k_len, T(0));
    const T cap = static_cast<T>(spec.softcap);
    if (cap > 0) {
      for (int64_t j = l; j < r; ++j) row[j] = cap * std::tanh(row[j] / cap);
    }
    if (mask->present) {
      const int64_t base = b * mask->sb + h * mask->sh + i * mask->sq;
      const int64_t sk = mask->sk;
      if (mask->is_bool) {
        const bool* m = mask->holder.template const_data_ptr<bool>() + base;
        for (int64_t j = l; j < r; ++j) row[j] = m[j * sk] ? row[j] : kNegInf;
      } else if (sk == 1) {  // the common contiguous case, vectorised by the compiler
        const T* m = mask->holder.template const_data_ptr<T>() + base;
        for (int64_t j = l; j < r; ++j) row[j] += m[j];
      } else {
        const T* m = mask->holder.template const_data_ptr<T>() + base;
        for (int64_t j = l; j < r; ++j) row[j] += m[j * sk];
      }
    }
    kernels->softmax(row + l, r - l, sinks ? sinks[h] : kNegInf);
  }
};

template <typename T>
ProbRows<T> make_rows(const Geometry& g, const AttentionSpec& spec, const at::Tensor& q, const at::Tensor& k,
                      const MaskView* mask, const at::Tensor& sinks) {
  return ProbRows<T>{g,
                     spec,
                     q.const_data_ptr<T>(),
                     q.stride(0),
                     q.stride(1),
                     q.stride(2),
                     k.const_data_ptr<T>(),
                     k.stride(0),
                     k.stride(1),
                     k.stride(2),
                     mask,
                     sinks.defined() ? sinks.const_data_ptr<T>() : nullptr,
                     key_panels<T>(k),
                     &row_kernels_of<T>()};
}

// A [batch, k_len] per-position tensor (validity or token ids), checked and made contiguous in `dtype`.
inline at::Tensor per_position(const at::Tensor& t, const char* name, const Geometry& g, at::ScalarType dtype,
                        const at::Device& device) {
  TORCH_CHECK_VALUE(t.dim() == 2 && t.size(0) == g.batch && t.size(1) == g.k_len, name, " must be [batch, k_len] = [",
                    g.batch, ", ", g.k_len, "], got shape ", t.sizes());
  TORCH_CHECK_TYPE(t.scalar_type() == at::kBool || at::isIntegralType(t.scalar_type(), /*includeBool=*/false), name,
                   " must be a bool or integer tensor, got ", t.scalar_type());
  TORCH_CHECK_VALUE(t.device() == device, name, " must be on ", device, ", got ", t.device());
  return t.to(dtype).contiguous();
}

inline int64_t chunk_rows(const AttentionSpec& spec, const Geometry& g) {
  const int64_t c = spec.query_chunk > 0 ? spec.query_chunk : auto_query_chunk(g.q_len, g.k_len);
  return std::max<int64_t>(1, std::min<int64_t>(c, std::max<int64_t>(g.q_len, 1)));
}

}  // namespace detail
}  // namespace attnscope
