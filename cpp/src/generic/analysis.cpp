// Device-generic analysis and bookkeeping ops (see attnscope/generic/analysis.h).
#include "attnscope/generic/analysis.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "attnscope/attention_flow.h"
#include "attnscope/quadrature.h"

namespace attnscope {
namespace generic {

at::Tensor rollout(const at::Tensor& attn, bool residual, HeadReduce reduce, at::OptionalIntArrayRef rows) {
  const at::ScalarType dtype = attn.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor ahat = augmented_attention(attn, residual, reduce, dtype);  // [layer, batch, L, L], checked
  const int64_t layers = ahat.size(0), batch = ahat.size(1), length = ahat.size(2);
  if (!rows.has_value()) {
    // Full rollout, from the first layer up: R_l = Â_l · R_{l-1}, all batch items in one product.
    at::Tensor acc = ahat[0].clone();
    for (int64_t l = 1; l < layers; ++l) acc = at::bmm(ahat[l], acc);
    return acc;
  }
  std::vector<int64_t> picked(rows->begin(), rows->end());
  for (int64_t r : picked) {
    TORCH_CHECK_VALUE(r >= 0 && r < length, "rows has ", r, ", out of range for ", length,
                      " query positions (valid: 0..", length - 1, ")");
  }
  if (batch == 0 || picked.empty() || length == 0) {
    return at::zeros({batch, static_cast<int64_t>(picked.size()), length}, ahat.options());
  }
  // Selected rows, from the top layer down: v <- v · Â_l, O(layers · L²) per row.
  const at::Tensor index = at::tensor(picked, at::kLong).to(ahat.device());
  at::Tensor acc = ahat[layers - 1].index_select(/*dim=*/1, index);
  for (int64_t l = layers - 2; l >= 0; --l) acc = at::bmm(acc, ahat[l]);
  return acc;
}

at::Tensor attention_flow(const at::Tensor& attn, bool residual, HeadReduce reduce, at::OptionalIntArrayRef rows,
                          bool normalize) {
  // Max-flow is a sequential graph algorithm: the CPU core solves it, on an explicit copy.
  return attnscope::attention_flow(attn.to(at::kCPU), residual, reduce, rows, normalize).to(attn.device());
}

TopkMerge topk_merge(const at::Tensor& values, const at::Tensor& keys, const at::Tensor& new_values,
                     const at::Tensor& new_keys) {
  check_topk_merge_args(values, keys, new_values, new_keys);
  const int64_t units = values.size(0), k = values.size(1), rows = new_values.size(0);
  const auto lopts = keys.options();
  const at::Tensor slot = at::arange(k, lopts).unsqueeze(0).expand({units, k});
  // Candidates: the running lists and every row of the block, [units, k + rows].
  at::Tensor cand_v = at::cat({values, new_values.t().to(values.scalar_type())}, /*dim=*/1);
  at::Tensor cand_k = at::cat({keys, new_keys.to(lopts.device()).unsqueeze(0).expand({units, rows})}, 1);
  at::Tensor cand_s = at::cat({at::where(keys >= 0, slot, -1), (at::arange(rows, lopts) + k).unsqueeze(0).expand({units, rows})}, 1);
  // Empty slots and NaN values are not candidates: value -inf, key -1, source -1 (they rank last).
  const at::Tensor empty = (cand_k < 0) | cand_v.isnan();
  cand_v = cand_v.masked_fill(empty, -std::numeric_limits<double>::infinity());
  cand_k = cand_k.masked_fill(empty, -1);
  cand_s = cand_s.masked_fill(empty, -1);
  // Order: larger value first; equal values by smaller key; empty slots last. Two stable sorts: by key (empty keys
  // as the largest), then by value.
  const at::Tensor sort_key = cand_k.masked_fill(empty, std::numeric_limits<int64_t>::max());
  at::Tensor order = std::get<1>(sort_key.sort(/*stable=*/true, /*dim=*/1, /*descending=*/false));
  const at::Tensor by_value =
      std::get<1>(cand_v.gather(1, order).sort(/*stable=*/true, /*dim=*/1, /*descending=*/true));
  order = order.gather(1, by_value).narrow(1, 0, k);
  return {cand_v.gather(1, order), cand_k.gather(1, order), cand_s.gather(1, order)};
}

std::pair<at::Tensor, at::Tensor> composite_gauss_legendre(const at::Tensor& bounds, int64_t order) {
  // A few dozen scalars: the CPU core computes them, on an explicit copy.
  auto r = attnscope::composite_gauss_legendre(bounds.to(at::kCPU), order);
  return {r.first.to(bounds.device()), r.second.to(bounds.device())};
}

at::Tensor refine_segments(const at::Tensor& bounds, const at::Tensor& errors, double tolerance, int64_t max_new) {
  return attnscope::refine_segments(bounds.to(at::kCPU), errors.to(at::kCPU), tolerance, max_new).to(bounds.device());
}

}  // namespace generic
}  // namespace attnscope
