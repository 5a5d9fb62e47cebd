#include "attnscope/attention_reduce.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "prob_rows.h"

namespace attnscope {

using namespace detail;  // NOLINT: the shared row kernel

HeadReduce parse_head_reduce(const std::string& name) {
  if (name == "none") return HeadReduce::kNone;
  if (name == "mean") return HeadReduce::kMean;
  if (name == "max") return HeadReduce::kMax;
  if (name == "sum") return HeadReduce::kSum;
  TORCH_CHECK_VALUE(false, "reduce must be one of 'none', 'mean', 'max', 'sum', got '", name, "'");
}

ReduceSpec make_reduce_spec(at::OptionalIntArrayRef heads, const std::string& reduce, bool keep_weights, int64_t topk,
                            bool entropy) {
  ReduceSpec rs;
  if (heads) rs.heads.assign(heads->begin(), heads->end());
  rs.reduce = parse_head_reduce(reduce);
  rs.keep_weights = keep_weights;
  rs.topk = topk;
  rs.entropy = entropy;
  return rs;
}

namespace {

// The values in the compute dtype with contiguous rows (checked at the door: check_attention_probs_reduced).
at::Tensor value_rows(const std::optional<at::Tensor>& value, at::ScalarType dtype) {
  return value ? rows_contiguous(*value, dtype) : at::Tensor();
}

// Query rows per task. A caller's query_chunk is kept; the automatic chunk is cut (to whole tiles) until every
// thread has a few tasks, which changes no value (results do not depend on the chunk).
int64_t task_rows(const AttentionSpec& spec, const Geometry& g) {
  const int64_t chunk = chunk_rows(spec, g);
  if (spec.query_chunk > 0) return chunk;
  const int64_t splits = (4 * at::get_num_threads() + g.batch - 1) / std::max<int64_t>(g.batch, 1);
  int64_t rows = (g.q_len + splits - 1) / std::max<int64_t>(splits, 1);
  rows = (rows + kTileRows - 1) / kTileRows * kTileRows;
  return std::min(chunk, std::max<int64_t>(rows, 4 * kTileRows));
}

// out[b, i, h, :] = sum_j p[i, j] v[b, h / group, j, :] for rows [q0, q1), over each tile's visible keys only
// (probabilities outside them are zero); `out` is [batch, q_len, heads, v_dim].
template <typename T>
void probs_times_values(const ProbRows<T>& rows, const Panels<T>& values, int64_t v_dim, int64_t b, int64_t h,
                        int64_t q0, int64_t q1, const T* p, int64_t ld, T* out) {
  constexpr int64_t W = panel_width<T>();
  const Geometry& g = rows.g;
  for (int64_t i0 = q0; i0 < q1; i0 += kTileRows) {
    const int64_t i1 = std::min(q1, i0 + kTileRows), l = rows.lo(i0), r = rows.hi(i1 - 1);
    T* c = out + ((b * g.q_len + i0) * g.heads + h) * v_dim;
    for (int64_t pc = 0; pc < values.n_panels; pc += kTilePanels) {
      rows.kernels->tile(p + (i0 - q0) * ld + l, ld, i1 - i0, values.panel(b, h / g.group, g.kv_heads, pc) + l * W,
                         values.depth * W, r - l, T(1), c + pc * W, g.heads * v_dim,
                         std::min(kTilePanels * W, v_dim - pc * W));
    }
  }
}

// Folds one head's probabilities for rows [q0, q0 + n) into the reduction `acc` (row stride k_len). The first head
// is copied whole (zeros outside each row's visible keys included); later heads touch only the visible keys
// [lo(i), hi(i)), where every head's probabilities can be non-zero (half of each row on average under causality).
template <typename T>
void combine_heads(const ProbRows<T>& rows, HeadReduce reduce, bool first, const T* p, T* acc, int64_t q0, int64_t n) {
  const int64_t k_len = rows.g.k_len;
  if (first) {
    std::copy(p, p + n * k_len, acc);
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    const int64_t l = rows.lo(q0 + i), r = rows.hi(q0 + i);
    const T* src = p + i * k_len;
    T* dst = acc + i * k_len;
    if (reduce == HeadReduce::kMax) {
      for (int64_t j = l; j < r; ++j) dst[j] = std::max(dst[j], src[j]);
    } else {
      for (int64_t j = l; j < r; ++j) dst[j] += src[j];
    }
  }
}

// Task t's query chunk: chunks taken alternately from both ends, so that the contiguous blocks of tasks that
// at::parallel_for hands each thread hold as many long rows as short ones under causality.
inline int64_t balanced_chunk(int64_t t, int64_t n_chunks) {
  return t % 2 == 0 ? t / 2 : n_chunks - 1 - t / 2;
}

}  // namespace

ReducedAttention attention_probs_reduced(const at::Tensor& q_in, const at::Tensor& k_in,
                                         const std::optional<at::Tensor>& mask, const AttentionSpec& spec,
                                         const std::optional<at::Tensor>& sinks_in, const ReduceSpec& rs,
                                         const std::optional<at::Tensor>& value_in) {
  const Geometry g = check_qk(q_in, k_in, spec);
  check_sinks(sinks_in, q_in);
  std::vector<int64_t> heads = rs.heads;
  if (heads.empty()) {
    heads.resize(static_cast<size_t>(g.heads));
    std::iota(heads.begin(), heads.end(), 0);
  }
  for (int64_t h : heads) {
    TORCH_CHECK_VALUE(h >= 0 && h < g.heads, "head index ", h, " out of range: q has ", g.heads, " heads (0..",
                      g.heads - 1, ")");
  }
  TORCH_CHECK_VALUE(rs.topk >= 0 && rs.topk <= g.k_len, "topk must be between 0 and k_len=", g.k_len, ", got ",
                    rs.topk);
  const int64_t n_sel = static_cast<int64_t>(heads.size());
  const at::ScalarType dtype = compute_dtype(q_in.scalar_type());
  const MaskView mview = prepare_mask(mask, g, dtype, q_in.device());
  const at::Tensor q = rows_contiguous(q_in, dtype);
  const at::Tensor k = rows_contiguous(k_in, dtype);
  const at::Tensor v = value_rows(value_in, dtype);
  const at::Tensor sinks = sinks_in ? sinks_in->to(dtype).contiguous() : at::Tensor();
  const auto opts = q.options().dtype(dtype);
  const bool reduced = rs.reduce != HeadReduce::kNone;
  const int64_t v_dim = v.defined() ? v.size(3) : 0;

  ReducedAttention out;
  if (rs.keep_weights) {
    out.weights = reduced ? at::empty({g.batch, g.q_len, g.k_len}, opts) : at::empty({g.batch, n_sel, g.q_len, g.k_len}, opts);
  } else {
    out.weights = at::empty({0}, opts);
  }
  out.topk_values = at::empty(rs.topk > 0 ? std::vector<int64_t>{g.batch, n_sel, g.q_len, rs.topk} : std::vector<int64_t>{0}, opts);
  out.topk_indices = at::empty(out.topk_values.sizes(), opts.dtype(at::kLong));
  out.entropy = at::empty(rs.entropy ? std::vector<int64_t>{g.batch, n_sel, g.q_len} : std::vector<int64_t>{0}, opts);
  out.output = v.defined() ? at::empty({g.batch, g.q_len, g.heads, v_dim}, opts) : at::empty({0}, opts);

  const int64_t chunk = task_rows(spec, g);
  const int64_t n_chunks = (g.q_len + chunk - 1) / chunk;
  AT_DISPATCH_FLOATING_TYPES(dtype, "attention_probs_reduced", [&] {
    using T = scalar_t;
    const ProbRows<T> rows = make_rows<T>(g, spec, q, k, &mview, sinks);
    const Panels<T> values = v.defined() ? value_panels<T>(v) : Panels<T>();
    T* w = rs.keep_weights ? out.weights.mutable_data_ptr<T>() : nullptr;
    T* tv = rs.topk > 0 ? out.topk_values.mutable_data_ptr<T>() : nullptr;
    int64_t* ti = rs.topk > 0 ? out.topk_indices.mutable_data_ptr<int64_t>() : nullptr;
    T* ent = rs.entropy ? out.entropy.mutable_data_ptr<T>() : nullptr;
    T* o = v.defined() ? out.output.mutable_data_ptr<T>() : nullptr;
    const T inv_heads = T(1) / static_cast<T>(n_sel);
    // One task per (batch, query chunk): every head of those rows, so head reductions need no shared writes and
    // the scratch is one chunk whatever the number of heads.
    at::parallel_for(0, g.batch * n_chunks, /*grain_size=*/1, [&](int64_t begin, int64_t end) {
      std::vector<T> scratch(static_cast<size_t>(chunk * g.k_len));
      std::vector<int64_t> order(static_cast<size_t>(g.k_len));
      std::vector<char> done(static_cast<size_t>(g.heads));
      for (int64_t t = begin; t < end; ++t) {
        const int64_t b = t / n_chunks, q0 = balanced_chunk(t % n_chunks, n_chunks) * chunk;
        const int64_t q1 = std::min(g.q_len, q0 + chunk);
        const int64_t n = q1 - q0;
        T* acc = (reduced && w) ? w + (b * g.q_len + q0) * g.k_len : nullptr;
        std::fill(done.begin(), done.end(), 0);
        for (int64_t s = 0; s < n_sel; ++s) {
          const int64_t h = heads[static_cast<size_t>(s)];
          const bool direct = w && !reduced;
          T* p = direct ? w + ((b * n_sel + s) * g.q_len + q0) * g.k_len : scratch.data();
          rows(b, h, q0, q1, p, g.k_len);
          if (o && !done[static_cast<size_t>(h)]) probs_times_values(rows, values, v_dim, b, h, q0, q1, p, g.k_len, o);
          done[static_cast<size_t>(h)] = 1;
          if (acc) combine_heads(rows, rs.reduce, s == 0, p, acc, q0, n);
          for (int64_t i = 0; i < n; ++i) {
            const T* row = p + i * g.k_len;
            const int64_t out_row = (b * n_sel + s) * g.q_len + q0 + i;
            if (ent) {
              T e = 0;
              for (int64_t j = 0; j < g.k_len; ++j) {
                if (row[j] > 0) e -= row[j] * std::log(row[j]);
              }
              ent[out_row] = e;
            }
            if (tv) {
              std::iota(order.begin(), order.end(), 0);
              // Largest first; ties keep the lower key index, so results are deterministic.
              std::partial_sort(order.begin(), order.begin() + rs.topk, order.end(),
                                [row](int64_t x, int64_t y) { return row[x] > row[y] || (row[x] == row[y] && x < y); });
              for (int64_t r = 0; r < rs.topk; ++r) {
                tv[out_row * rs.topk + r] = row[order[static_cast<size_t>(r)]];
                ti[out_row * rs.topk + r] = order[static_cast<size_t>(r)];
              }
            }
          }
        }
        if (acc && rs.reduce == HeadReduce::kMean) {
          for (int64_t i = 0; i < n; ++i) {
            T* row = acc + i * g.k_len;
            for (int64_t j = rows.lo(q0 + i), r = rows.hi(q0 + i); j < r; ++j) row[j] *= inv_heads;
          }
        }
        for (int64_t h = 0; o && h < g.heads; ++h) {  // heads the selection left out still make the output
          if (done[static_cast<size_t>(h)]) continue;
          rows(b, h, q0, q1, scratch.data(), g.k_len);
          probs_times_values(rows, values, v_dim, b, h, q0, q1, scratch.data(), g.k_len, o);
        }
      }
    });
  });
  return out;
}

}  // namespace attnscope
