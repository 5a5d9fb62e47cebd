#include "attnscope/rollout.h"

#include <cmath>

#include <vector>

namespace attnscope {

HeadReduce head_reduce_from_int(int64_t code) {
  TORCH_CHECK_VALUE(code == static_cast<int64_t>(HeadReduce::kMean) || code == static_cast<int64_t>(HeadReduce::kMax),
                    "head_reduce must be 0 (mean) or 1 (max), got ", code);
  return static_cast<HeadReduce>(code);
}

at::Tensor augmented_attention(const at::Tensor& attn, bool residual, HeadReduce reduce, at::ScalarType dtype) {
  TORCH_CHECK_VALUE(attn.dim() == 5, "attention must be [layer, batch, head, query, key], got a ", attn.dim(),
                    "-D tensor of shape ", attn.sizes());
  TORCH_CHECK_TYPE(at::isFloatingType(attn.scalar_type()),
                   "attention must be float16, bfloat16, float32 or float64, got ", attn.scalar_type());
  TORCH_CHECK_VALUE(attn.size(0) >= 1, "attention needs at least one layer, got shape ", attn.sizes());
  TORCH_CHECK_VALUE(attn.size(2) >= 1, "attention needs at least one head, got shape ", attn.sizes());
  TORCH_CHECK_VALUE(attn.size(3) == attn.size(4),
                    "rollout chains layers, so query and key lengths must match (self-attention over one sequence), "
                    "got query=", attn.size(3), " and key=", attn.size(4), " (shape ", attn.sizes(), ")");
  TORCH_INTERNAL_ASSERT(dtype == at::kFloat || dtype == at::kDouble);
  // Heads are reduced in the weights' own precision (float32 for half types) and only the reduced matrices are
  // widened: a float64 copy of all the weights costs more than the whole reduction.
  const at::ScalarType reduce_dtype = attn.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor a = attn.scalar_type() == reduce_dtype ? attn : attn.to(reduce_dtype);
  at::Tensor r = (reduce == HeadReduce::kMean ? a.mean(/*dim=*/2) : a.amax(/*dim=*/2)).to(dtype);  // [layer, batch, q, k]
  if (r.numel() == 0) return r.contiguous();
  // The reduced matrices are what rollout multiplies and flow uses as capacities, and a twelfth of the weights:
  // checking them costs little, and NaN or inf anywhere in the weights propagates into them.
  auto [lo, hi] = at::aminmax(r);
  const double mn = lo.item<double>(), mx = hi.item<double>();
  TORCH_CHECK_VALUE(mn >= 0.0 && std::isfinite(mx), "attention weights must be finite and >= 0 (probabilities); "
                    "their head ", reduce == HeadReduce::kMean ? "mean" : "max", " has min ", mn, " and max ", mx);
  if (residual) {
    r.diagonal(/*offset=*/0, /*dim1=*/-2, /*dim2=*/-1).add_(1.0);
    r.div_(r.sum(/*dim=*/-1, /*keepdim=*/true));  // >= 1 thanks to the identity, never 0
  }
  return r.contiguous();
}

at::Tensor rollout(const at::Tensor& attn, bool residual, HeadReduce reduce, at::OptionalIntArrayRef rows) {
  TORCH_CHECK_VALUE(attn.device().is_cpu(), "attention must be on the CPU for this kernel, got ", attn.device());
  const at::ScalarType dtype = attn.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor ahat = augmented_attention(attn, residual, reduce, dtype);  // [layer, batch, L, L]
  const int64_t layers = ahat.size(0), batch = ahat.size(1), length = ahat.size(2);

  std::vector<int64_t> picked;
  if (rows.has_value()) {
    for (int64_t r : *rows) {
      TORCH_CHECK_VALUE(r >= 0 && r < length, "rows has ", r, ", out of range for ", length,
                        " query positions (valid: 0..", length - 1, ")");
      picked.push_back(r);
    }
  }
  const int64_t out_rows = rows.has_value() ? static_cast<int64_t>(picked.size()) : length;
  at::Tensor out = at::empty({batch, out_rows, length}, ahat.options());
  if (batch == 0 || out_rows == 0 || length == 0) return out.zero_();
  const at::Tensor index = at::tensor(picked, at::kLong);

  // Batch items one after the other, each product on BLAS's own threads: BLAS (MKL) called inside
  // at::parallel_for's OpenMP region can wait on a busy core for a scheduler tick per call (measured 75x slower
  // on two shared cores, issue 25).
  for (int64_t b = 0; b < batch; ++b) {
    at::Tensor acc, tmp;
    if (!rows.has_value()) {
      // Full rollout, from the first layer up: R_l = Â_l · R_{l-1}.
      acc = ahat[0][b].clone();
      tmp = at::empty_like(acc);
      for (int64_t l = 1; l < layers; ++l) {
        at::mm_out(tmp, ahat[l][b], acc);
        std::swap(acc, tmp);
      }
    } else {
      // Selected rows, from the top layer down: v ← v · Â_l, a vector-matrix product per row and layer.
      acc = ahat[layers - 1][b].index_select(/*dim=*/0, index);
      tmp = at::empty_like(acc);
      for (int64_t l = layers - 2; l >= 0; --l) {
        at::mm_out(tmp, acc, ahat[l][b]);
        std::swap(acc, tmp);
      }
    }
    out[b].copy_(acc);
  }
  return out;
}

}  // namespace attnscope
