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

ReducedAttention attention_probs_reduced(const at::Tensor& q_in, const at::Tensor& k_in,
                                         const std::optional<at::Tensor>& mask, const AttentionSpec& spec,
                                         const std::optional<at::Tensor>& sinks_in, const ReduceSpec& rs) {
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
  const at::Tensor sinks = sinks_in ? sinks_in->to(dtype).contiguous() : at::Tensor();
  const auto opts = q.options().dtype(dtype);
  const bool reduced = rs.reduce != HeadReduce::kNone;

  ReducedAttention out;
  if (rs.keep_weights) {
    out.weights = reduced ? at::empty({g.batch, g.q_len, g.k_len}, opts) : at::empty({g.batch, n_sel, g.q_len, g.k_len}, opts);
  } else {
    out.weights = at::empty({0}, opts);
  }
  out.topk_values = at::empty(rs.topk > 0 ? std::vector<int64_t>{g.batch, n_sel, g.q_len, rs.topk} : std::vector<int64_t>{0}, opts);
  out.topk_indices = at::empty(out.topk_values.sizes(), opts.dtype(at::kLong));
  out.entropy = at::empty(rs.entropy ? std::vector<int64_t>{g.batch, n_sel, g.q_len} : std::vector<int64_t>{0}, opts);

  const int64_t chunk = chunk_rows(spec, g);
  const int64_t n_chunks = (g.q_len + chunk - 1) / chunk;
  AT_DISPATCH_FLOATING_TYPES(dtype, "attention_probs_reduced", [&] {
    using T = scalar_t;
    const ProbRows<T> rows = make_rows<T>(g, spec, q, k, &mview, sinks);
    T* w = rs.keep_weights ? out.weights.mutable_data_ptr<T>() : nullptr;
    T* tv = rs.topk > 0 ? out.topk_values.mutable_data_ptr<T>() : nullptr;
    int64_t* ti = rs.topk > 0 ? out.topk_indices.mutable_data_ptr<int64_t>() : nullptr;
    T* ent = rs.entropy ? out.entropy.mutable_data_ptr<T>() : nullptr;
    const T inv_heads = T(1) / static_cast<T>(n_sel);
    // One task per (batch, query chunk): every selected head of those rows, so head reductions need no
    // shared writes and the scratch is one chunk whatever the number of heads.
    at::parallel_for(0, g.batch * n_chunks, /*grain_size=*/1, [&](int64_t begin, int64_t end) {
      std::vector<T> scratch(static_cast<size_t>(chunk * g.k_len));
      std::vector<int64_t> order(static_cast<size_t>(g.k_len));
      for (int64_t t = begin; t < end; ++t) {
        const int64_t b = t / n_chunks, q0 = (t % n_chunks) * chunk, q1 = std::min(g.q_len, q0 + chunk);
        const int64_t n = q1 - q0;
        T* acc = (reduced && w) ? w + (b * g.q_len + q0) * g.k_len : nullptr;
        for (int64_t s = 0; s < n_sel; ++s) {
          const int64_t h = heads[static_cast<size_t>(s)];
          const bool direct = w && !reduced;
          T* p = direct ? w + ((b * n_sel + s) * g.q_len + q0) * g.k_len : scratch.data();
          rows(b, h, q0, q1, p, g.k_len);
          if (acc) {
            for (int64_t i = 0; i < n * g.k_len; ++i) {
              if (s == 0) {
                acc[i] = p[i];
              } else if (rs.reduce == HeadReduce::kMax) {
                acc[i] = std::max(acc[i], p[i]);
              } else {
                acc[i] += p[i];
              }
            }
          }
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
          for (int64_t i = 0; i < n * g.k_len; ++i) acc[i] *= inv_heads;
        }
      }
    });
  });
  return out;
}

}  // namespace attnscope
