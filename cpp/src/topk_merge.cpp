#include "attnscope/topk_merge.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace attnscope {

namespace {

struct Candidate {
  double value;
  int64_t key;
  int64_t source;
};

// Larger value first; equal values: smaller key first; empty slots (key < 0) last.
inline bool better(const Candidate& a, const Candidate& b) {
  if (a.value != b.value) return a.value > b.value;
  if ((a.key < 0) != (b.key < 0)) return a.key >= 0;
  return a.key < b.key;
}

}  // namespace

void check_topk_merge_args(const at::Tensor& values_in, const at::Tensor& keys_in, const at::Tensor& new_values_in,
                           const at::Tensor& new_keys_in) {
  TORCH_CHECK_VALUE(values_in.dim() == 2, "values must be [units, k], got ", values_in.dim(), "D");
  TORCH_CHECK_VALUE(keys_in.sizes() == values_in.sizes(), "keys must have the shape of values ", values_in.sizes(),
                    ", got ", keys_in.sizes());
  TORCH_CHECK_VALUE(new_values_in.dim() == 2, "new_values must be [rows, units], got ", new_values_in.dim(), "D");
  TORCH_CHECK_VALUE(new_values_in.size(1) == values_in.size(0), "new_values has ", new_values_in.size(1),
                    " units, the running lists have ", values_in.size(0));
  TORCH_CHECK_VALUE(new_keys_in.dim() == 1 && new_keys_in.size(0) == new_values_in.size(0),
                    "new_keys must be [rows] = [", new_values_in.size(0), "], got shape ", new_keys_in.sizes());
  TORCH_CHECK_VALUE(values_in.size(1) >= 1, "k must be >= 1, got ", values_in.size(1));
  TORCH_CHECK_TYPE(keys_in.scalar_type() == at::kLong && new_keys_in.scalar_type() == at::kLong,
                   "keys and new_keys must be int64, got ", keys_in.scalar_type(), " and ", new_keys_in.scalar_type());
  TORCH_CHECK_TYPE(new_values_in.scalar_type() == values_in.scalar_type(), "new_values must have the dtype of values (",
                   values_in.scalar_type(), "), got ", new_values_in.scalar_type());
}

TopkMerge topk_merge(const at::Tensor& values_in, const at::Tensor& keys_in, const at::Tensor& new_values_in,
                     const at::Tensor& new_keys_in) {
  check_topk_merge_args(values_in, keys_in, new_values_in, new_keys_in);
  TORCH_CHECK_VALUE(values_in.device().is_cpu() && new_values_in.device().is_cpu(),
                    "topk_merge's CPU kernel got tensors on ", values_in.device(), " and ", new_values_in.device());

  const at::Tensor values = values_in.contiguous(), keys = keys_in.contiguous();
  const at::Tensor new_values = new_values_in.contiguous(), new_keys = new_keys_in.contiguous();
  const int64_t units = values.size(0), k = values.size(1), rows = new_values.size(0);
  at::Tensor out_values = at::empty_like(values), out_keys = at::empty_like(keys);
  at::Tensor out_source = at::empty_like(keys);
  const int64_t* nk = new_keys.data_ptr<int64_t>();
  const int64_t* ok = keys.data_ptr<int64_t>();
  int64_t* rk = out_keys.data_ptr<int64_t>();
  int64_t* rs = out_source.data_ptr<int64_t>();

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, values.scalar_type(), "topk_merge", [&] {
    const scalar_t* ov = values.data_ptr<scalar_t>();
    const scalar_t* nv = new_values.data_ptr<scalar_t>();
    scalar_t* rv = out_values.data_ptr<scalar_t>();
    // Units in blocks: each task reads its block's contiguous slice of every row.
    constexpr int64_t kBlock = 64;
    at::parallel_for(0, (units + kBlock - 1) / kBlock, 1, [&](int64_t b0, int64_t b1) {
      std::vector<std::vector<Candidate>> cands(kBlock);
      std::vector<Candidate> floor(kBlock);  // the k-th best so far: a new value must beat it
      for (int64_t blk = b0; blk < b1; ++blk) {
        const int64_t u0 = blk * kBlock, u1 = std::min(units, u0 + kBlock);
        for (int64_t u = u0; u < u1; ++u) {
          auto& c = cands[u - u0];
          c.clear();
          for (int64_t j = 0; j < k; ++j) {
            const int64_t key = ok[u * k + j];
            if (key >= 0) c.push_back({static_cast<double>(ov[u * k + j]), key, j});
          }
          floor[u - u0] = static_cast<int64_t>(c.size()) == k ? c.back()
                                                              : Candidate{-std::numeric_limits<double>::infinity(), -1, -1};
        }
        for (int64_t r = 0; r < rows; ++r) {
          const scalar_t* row = nv + r * units;
          for (int64_t u = u0; u < u1; ++u) {
            const double v = static_cast<double>(row[u]);
            if (std::isnan(v)) continue;
            const Candidate cand{v, nk[r], k + r};
            if (!better(cand, floor[u - u0])) continue;
            auto& c = cands[u - u0];
            c.push_back(cand);
            if (static_cast<int64_t>(c.size()) >= 4 * k + 64) {  // keep the candidate list short
              std::nth_element(c.begin(), c.begin() + (k - 1), c.end(), better);
              c.resize(k);
              floor[u - u0] = *std::min_element(c.begin(), c.end(), [](const Candidate& a, const Candidate& b) {
                return better(b, a);
              });
            }
          }
        }
        for (int64_t u = u0; u < u1; ++u) {
          auto& c = cands[u - u0];
          const int64_t n = std::min<int64_t>(k, static_cast<int64_t>(c.size()));
          std::partial_sort(c.begin(), c.begin() + n, c.end(), better);
          for (int64_t j = 0; j < k; ++j) {
            const bool full = j < n;
            rv[u * k + j] = full ? static_cast<scalar_t>(c[j].value)
                                 : static_cast<scalar_t>(-std::numeric_limits<double>::infinity());
            rk[u * k + j] = full ? c[j].key : -1;
            rs[u * k + j] = full ? c[j].source : -1;
          }
        }
      }
    });
  });
  return {out_values, out_keys, out_source};
}

}  // namespace attnscope
