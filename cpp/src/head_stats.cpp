#include "attnscope/head_stats.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "prob_rows.h"

namespace attnscope {

using namespace detail;  // NOLINT: the shared row kernel

HeadStatSums attention_head_stats(const at::Tensor& q_in, const at::Tensor& k_in, const std::optional<at::Tensor>& mask,
                                  const AttentionSpec& spec, const std::optional<at::Tensor>& sinks_in,
                                  const std::optional<at::Tensor>& input_ids, const std::optional<at::Tensor>& valid,
                                  int64_t induction_period) {
  const Geometry g = check_qk(q_in, k_in, spec);
  check_sinks(sinks_in, q_in);
  TORCH_CHECK_VALUE(induction_period == 0 || induction_period >= 2,
                    "induction_period must be 0 (off) or the repeated segment's length >= 2, got ", induction_period);
  const at::ScalarType dtype = compute_dtype(q_in.scalar_type());
  const MaskView mview = prepare_mask(mask, g, dtype, q_in.device());
  const at::Tensor q = rows_contiguous(q_in, dtype);
  const at::Tensor k = rows_contiguous(k_in, dtype);
  const at::Tensor sinks = sinks_in ? sinks_in->to(dtype).contiguous() : at::Tensor();
  const at::Tensor ids = input_ids ? per_position(*input_ids, "input_ids", g, at::kLong, q_in.device()) : at::Tensor();
  const at::Tensor ok = valid ? per_position(*valid, "valid", g, at::kBool, q_in.device()) : at::Tensor();

  const int64_t chunk = chunk_rows(spec, g);
  const int64_t n_chunks = (g.q_len + chunk - 1) / chunk;
  // One partial sum per (batch, chunk) task, added up afterwards: no shared writes, a fixed summation order.
  at::Tensor part_sums = at::zeros({g.batch, n_chunks, g.heads, kNumHeadStats}, q.options().dtype(at::kDouble));
  at::Tensor part_counts = at::zeros({g.batch, n_chunks, kNumHeadStats}, q.options().dtype(at::kLong));
  if (g.batch == 0 || g.q_len == 0 || g.k_len == 0 || g.heads == 0) {
    return {part_sums.sum(/*dim=*/1), part_counts.sum(/*dim=*/1)};
  }

  AT_DISPATCH_FLOATING_TYPES(dtype, "attention_head_stats", [&] {
    using T = scalar_t;
    const ProbRows<T> rows = make_rows<T>(g, spec, q, k, &mview, sinks);
    const int64_t* id = ids.defined() ? ids.const_data_ptr<int64_t>() : nullptr;
    const bool* vd = ok.defined() ? ok.const_data_ptr<bool>() : nullptr;
    double* sums = part_sums.mutable_data_ptr<double>();
    int64_t* counts = part_counts.mutable_data_ptr<int64_t>();
    const int64_t P = induction_period;
    at::parallel_for(0, g.batch * n_chunks, /*grain_size=*/1, [&](int64_t begin, int64_t end) {
      std::vector<T> scratch(static_cast<size_t>(chunk * g.k_len));
      // Per row of the chunk, shared by every head: which statistics count it, and its duplicate keys (CSR).
      std::vector<char> row_ok(static_cast<size_t>(chunk)), prev_ok(static_cast<size_t>(chunk)),
          ind_ok(static_cast<size_t>(chunk)), dup_ok(static_cast<size_t>(chunk));
      std::vector<int64_t> dup_start(static_cast<size_t>(chunk + 1)), dup_keys;
      for (int64_t t = begin; t < end; ++t) {
        const int64_t b = t / n_chunks, c = t % n_chunks, q0 = c * chunk, q1 = std::min(g.q_len, q0 + chunk);
        const int64_t n = q1 - q0;
        const bool* vb = vd ? vd + b * g.k_len : nullptr;
        const int64_t* ib = id ? id + b * g.k_len : nullptr;
        auto is_valid = [&](int64_t pos) { return pos >= 0 && pos < g.k_len && (!vb || vb[pos]); };
        int64_t first = 0;
        while (first < g.k_len && !is_valid(first)) ++first;
        int64_t* cnt = counts + t * kNumHeadStats;
        dup_keys.clear();
        for (int64_t r = 0; r < n; ++r) {
          const int64_t pos = q0 + r + g.offset;
          const size_t ri = static_cast<size_t>(r);
          row_ok[ri] = is_valid(pos);
          prev_ok[ri] = row_ok[ri] && is_valid(pos - 1);
          ind_ok[ri] = row_ok[ri] && ib && P > 0 && is_valid(pos - P) && is_valid(pos - P + 1) && ib[pos] == ib[pos - P];
          dup_start[ri] = static_cast<int64_t>(dup_keys.size());
          if (row_ok[ri] && ib) {
            for (int64_t j = 0; j < std::min(pos, g.k_len); ++j) {
              if (ib[j] == ib[pos] && (!vb || vb[j])) dup_keys.push_back(j);
            }
          }
          dup_ok[ri] = static_cast<int64_t>(dup_keys.size()) > dup_start[ri];
          if (!row_ok[ri]) continue;
          cnt[kPrevToken] += prev_ok[ri];
          cnt[kInduction] += ind_ok[ri];
          cnt[kDuplicate] += dup_ok[ri];
          cnt[kEntropy] += 1;
          cnt[kFirstToken] += first < g.k_len;
          cnt[kDistance] += 1;
        }
        dup_start[static_cast<size_t>(n)] = static_cast<int64_t>(dup_keys.size());
        for (int64_t h = 0; h < g.heads; ++h) {
          rows(b, h, q0, q1, scratch.data(), g.k_len);
          double acc[kNumHeadStats] = {0, 0, 0, 0, 0, 0};
          for (int64_t r = 0; r < n; ++r) {
            const size_t ri = static_cast<size_t>(r);
            if (!row_ok[ri]) continue;
            const T* p = scratch.data() + r * g.k_len;
            const int64_t pos = q0 + r + g.offset;
            if (prev_ok[ri]) acc[kPrevToken] += p[pos - 1];
            if (ind_ok[ri]) acc[kInduction] += p[pos - P + 1];
            if (dup_ok[ri]) {
              double d = 0;
              for (int64_t x = dup_start[ri]; x < dup_start[ri + 1]; ++x) d += p[dup_keys[static_cast<size_t>(x)]];
              acc[kDuplicate] += d;
            }
            if (first < g.k_len) acc[kFirstToken] += p[first];
            double entropy = 0, distance = 0;
            for (int64_t j = 0; j < g.k_len; ++j) {
              const T pj = p[j];
              if (pj > 0) {
                entropy -= static_cast<double>(pj * std::log(pj));
                distance += static_cast<double>(pj) * static_cast<double>(std::llabs(pos - j));
              }
            }
            acc[kEntropy] += entropy;
            acc[kDistance] += distance;
          }
          double* out = sums + (t * g.heads + h) * kNumHeadStats;
          for (int s = 0; s < kNumHeadStats; ++s) out[s] = acc[s];
        }
      }
    });
  });
  return {part_sums.sum(/*dim=*/1), part_counts.sum(/*dim=*/1)};
}

}  // namespace attnscope
