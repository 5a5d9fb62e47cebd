#include "attnscope/rollout.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <limits>

#include <vector>

namespace attnscope {

HeadReduce head_reduce_from_int(int64_t code) {
  TORCH_CHECK_VALUE(code == static_cast<int64_t>(HeadReduce::kMean) || code == static_cast<int64_t>(HeadReduce::kMax),
                    "head_reduce must be 0 (mean) or 1 (max), got ", code);
  return static_cast<HeadReduce>(code);
}

namespace {

// One pass over the weights per output row: reduce the heads, check every weight (finite, >= 0), add I and
// row-normalise. The check rides along with the reduction instead of costing another pass over
// [layer, batch, head, L, L], the largest tensor here.
template <typename in_t, typename out_t>
bool reduce_rows(const at::Tensor& attn, at::Tensor& out, bool residual, HeadReduce reduce) {
  const int64_t layers = attn.size(0), batch = attn.size(1), heads = attn.size(2), length = attn.size(3);
  const in_t* src = attn.const_data_ptr<in_t>();
  out_t* dst = out.mutable_data_ptr<out_t>();
  const int64_t mat = length * length;
  std::atomic<bool> all_ok{true};
  // A row reads heads * L weights; aim for tasks of about 32K of them.
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, heads * length));
  at::parallel_for(0, layers * batch * length, grain, [&](int64_t r0, int64_t r1) {
    bool ok = true;
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t lb = r / length, i = r % length;  // lb = layer * batch + b
      const in_t* x = src + lb * heads * mat + i * length;
      out_t* y = dst + r * length;
      for (int64_t j = 0; j < length; ++j) y[j] = static_cast<out_t>(x[j]);
      for (int64_t h = 1; h < heads; ++h) {
        const in_t* xh = x + h * mat;
        if (reduce == HeadReduce::kMean) {
          for (int64_t j = 0; j < length; ++j) y[j] += static_cast<out_t>(xh[j]);
        } else {
          for (int64_t j = 0; j < length; ++j) y[j] = std::max(y[j], static_cast<out_t>(xh[j]));
        }
      }
      for (int64_t h = 0; h < heads; ++h) {
        const in_t* xh = x + h * mat;
        for (int64_t j = 0; j < length; ++j) {
          const out_t v = static_cast<out_t>(xh[j]);
          ok &= (v >= out_t(0)) & (v <= std::numeric_limits<out_t>::max());  // false for NaN and inf
        }
      }
      if (reduce == HeadReduce::kMean) {
        const out_t inv = out_t(1) / static_cast<out_t>(heads);
        for (int64_t j = 0; j < length; ++j) y[j] *= inv;
      }
      if (residual) {
        y[i] += out_t(1);
        out_t sum = 0;
        for (int64_t j = 0; j < length; ++j) sum += y[j];
        const out_t inv = out_t(1) / sum;  // sum >= 1 thanks to the identity (when the weights are valid)
        for (int64_t j = 0; j < length; ++j) y[j] *= inv;
      }
    }
    if (!ok) all_ok.store(false, std::memory_order_relaxed);
  });
  return all_ok.load();
}

}  // namespace

at::Tensor augmented_attention(const at::Tensor& attn, bool residual, HeadReduce reduce, at::ScalarType dtype) {
  TORCH_CHECK_VALUE(attn.dim() == 5, "attention must be [layer, batch, head, query, key], got a ", attn.dim(),
                    "-D tensor of shape ", attn.sizes());
  TORCH_CHECK_TYPE(at::isFloatingType(attn.scalar_type()),
                   "attention must be float16, bfloat16, float32 or float64, got ", attn.scalar_type());
  TORCH_CHECK_VALUE(attn.device().is_cpu(), "attention must be on the CPU for this kernel, got ", attn.device());
  TORCH_CHECK_VALUE(attn.size(0) >= 1, "attention needs at least one layer, got shape ", attn.sizes());
  TORCH_CHECK_VALUE(attn.size(2) >= 1, "attention needs at least one head, got shape ", attn.sizes());
  TORCH_CHECK_VALUE(attn.size(3) == attn.size(4),
                    "rollout chains layers, so query and key lengths must match (self-attention over one sequence), "
                    "got query=", attn.size(3), " and key=", attn.size(4), " (shape ", attn.sizes(), ")");
  TORCH_INTERNAL_ASSERT(dtype == at::kFloat || dtype == at::kDouble);
  const at::Tensor a = attn.contiguous();
  at::Tensor out = at::empty({a.size(0), a.size(1), a.size(3), a.size(4)}, a.options().dtype(dtype));
  if (a.numel() == 0) return out;
  bool ok = true;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, a.scalar_type(), "augmented_attention", [&] {
    if (dtype == at::kDouble) {
      ok = reduce_rows<scalar_t, double>(a, out, residual, reduce);
    } else {
      ok = reduce_rows<scalar_t, float>(a, out, residual, reduce);
    }
  });
  if (!ok) {  // the slow path only builds the message
    auto [lo, hi] = at::aminmax(a);  // NaN propagates into both
    TORCH_CHECK_VALUE(false, "attention weights must be finite and >= 0 (probabilities), got min ", lo.item<double>(),
                      " and max ", hi.item<double>());
  }
  return out;
}

at::Tensor rollout(const at::Tensor& attn, bool residual, HeadReduce reduce, at::OptionalIntArrayRef rows) {
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

  // Batch items are independent. Inside a task the products run on one thread when batch items already keep
  // the threads busy; with a single item BLAS uses its own threads.
  at::parallel_for(0, batch, /*grain_size=*/1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
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
  });
  return out;
}

}  // namespace attnscope
