#include "attnscope/attention_probs.h"

#include "prob_rows.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace attnscope {

using namespace detail;  // NOLINT: the shared row kernel

int64_t auto_query_chunk(int64_t q_len, int64_t k_len) {
  constexpr int64_t kElements = int64_t{1} << 18;
  return std::max<int64_t>(1, std::min<int64_t>(q_len, kElements / std::max<int64_t>(k_len, 1)));
}

at::Tensor attention_probs(const at::Tensor& q_in, const at::Tensor& k_in, const std::optional<at::Tensor>& mask,
                           const AttentionSpec& spec, const std::optional<at::Tensor>& sinks_in) {
  const Geometry g = check_qk(q_in, k_in, spec);
  check_sinks(sinks_in, q_in);
  const at::ScalarType dtype = compute_dtype(q_in.scalar_type());
  const MaskView mview = prepare_mask(mask, g, dtype, q_in.device());
  const at::Tensor q = rows_contiguous(q_in, dtype);
  const at::Tensor k = rows_contiguous(k_in, dtype);
  const at::Tensor sinks = sinks_in ? sinks_in->to(dtype).contiguous() : at::Tensor();
  at::Tensor out = at::empty({g.batch, g.heads, g.q_len, g.k_len}, q.options().dtype(dtype));

  const int64_t chunk = chunk_rows(spec, g);
  const int64_t n_chunks = (g.q_len + chunk - 1) / chunk;
  AT_DISPATCH_FLOATING_TYPES(dtype, "attention_probs", [&] {
    const ProbRows<scalar_t> rows = make_rows<scalar_t>(g, spec, q, k, &mview, sinks);
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, g.batch * g.heads * n_chunks, /*grain_size=*/1, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const int64_t c = t % n_chunks, bh = t / n_chunks;
        const int64_t q0 = c * chunk, q1 = std::min(g.q_len, q0 + chunk);
        rows(bh / g.heads, bh % g.heads, q0, q1, o + (bh * g.q_len + q0) * g.k_len, g.k_len);
      }
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> attention_probs_backward(
    const at::Tensor& grad_in, const at::Tensor& probs_in, const at::Tensor& q_in, const at::Tensor& k_in,
    const AttentionSpec& spec, const std::optional<at::Tensor>& sinks_in) {
  const Geometry g = check_qk(q_in, k_in, spec);
  check_sinks(sinks_in, q_in);
  const at::ScalarType dtype = compute_dtype(q_in.scalar_type());
  const std::vector<int64_t> p_shape{g.batch, g.heads, g.q_len, g.k_len};
  TORCH_CHECK_VALUE(probs_in.sizes() == p_shape, "probs must be ", at::IntArrayRef(p_shape), ", got ",
                    probs_in.sizes());
  TORCH_CHECK_VALUE(grad_in.sizes() == p_shape, "grad must be ", at::IntArrayRef(p_shape), ", got ",
                    grad_in.sizes());
  const at::Tensor q = rows_contiguous(q_in, dtype);
  const at::Tensor k = rows_contiguous(k_in, dtype);
  const at::Tensor probs = probs_in.to(dtype).contiguous();
  const at::Tensor grad = grad_in.to(dtype).contiguous();
  const at::Tensor sinks = sinks_in ? sinks_in->to(dtype).contiguous() : at::Tensor();
  at::Tensor dq = at::zeros({g.batch, g.heads, g.q_len, g.head_dim}, q.options().dtype(dtype));
  at::Tensor dk = at::zeros({g.batch, g.kv_heads, g.k_len, g.head_dim}, q.options().dtype(dtype));
  // Per-(batch, head) partial sums keep the parallel tasks free of shared writes.
  at::Tensor dsinks_partial = at::zeros({g.batch, g.heads}, q.options().dtype(dtype));
  const MaskView no_mask;
  const int64_t chunk = chunk_rows(spec, g);

  AT_DISPATCH_FLOATING_TYPES(dtype, "attention_probs_backward", [&] {
    using T = scalar_t;
    const ProbRows<T> rows = make_rows<T>(g, spec, q, k, &no_mask, sinks);
    const T* P = probs.const_data_ptr<T>();
    const T* G = grad.const_data_ptr<T>();
    T* dq_ptr = dq.mutable_data_ptr<T>();
    T* dk_ptr = dk.mutable_data_ptr<T>();
    T* ds_ptr = dsinks_partial.mutable_data_ptr<T>();
    const T cap = static_cast<T>(spec.softcap), scale = static_cast<T>(spec.scale);
    // One task per (batch, kv head): it owns dk[b, kv] and the dq rows of its query heads.
    at::parallel_for(0, g.batch * g.kv_heads, /*grain_size=*/1, [&](int64_t begin, int64_t end) {
      std::vector<T> scratch(static_cast<size_t>(chunk * g.k_len));
      for (int64_t t = begin; t < end; ++t) {
        const int64_t b = t / g.kv_heads, kv = t % g.kv_heads;
        Rows<T> dk_bk(dk_ptr + (b * g.kv_heads + kv) * g.k_len * g.head_dim, g.k_len, g.head_dim,
                      Eigen::OuterStride<>(g.head_dim));
        for (int64_t h = kv * g.group; h < (kv + 1) * g.group; ++h) {
          T sink_grad = 0;
          for (int64_t q0 = 0; q0 < g.q_len; q0 += chunk) {
            const int64_t q1 = std::min(g.q_len, q0 + chunk), n = q1 - q0;
            T* ds = scratch.data();
            if (cap > 0) rows.raw_logits(b, h, q0, q1, ds, g.k_len);
            for (int64_t i = 0; i < n; ++i) {
              const int64_t off = ((b * g.heads + h) * g.q_len + q0 + i) * g.k_len;
              const T* p = P + off;
              const T* gr = G + off;
              T dot = 0, mass = 0;
              for (int64_t j = 0; j < g.k_len; ++j) {
                dot += gr[j] * p[j];
                mass += p[j];
              }
              T* row = ds + i * g.k_len;
              for (int64_t j = 0; j < g.k_len; ++j) {
                T d = p[j] * (gr[j] - dot);  // softmax backward; zero wherever p is (masked entries)
                if (cap > 0) {
                  const T th = std::tanh(row[j] / cap);
                  d *= T(1) - th * th;
                }
                row[j] = d * scale;  // d/d(q.k): the scale is applied before the cap
              }
              // d/d(sink) = -p_sink * sum_j g_j p_j, with p_sink = 1 - sum_j p_j.
              if (rows.sinks) sink_grad -= (T(1) - mass) * dot;
            }
            Rows<T> dS(ds, n, g.k_len, Eigen::OuterStride<>(g.k_len));
            Rows<T> dq_rows(dq_ptr + ((b * g.heads + h) * g.q_len + q0) * g.head_dim, n, g.head_dim,
                            Eigen::OuterStride<>(g.head_dim));
            dq_rows.noalias() = dS * rows.k_rows(b, h);
            dk_bk.noalias() += dS.transpose() * rows.q_rows(b, h, q0, n);
          }
          ds_ptr[b * g.heads + h] = sink_grad;
        }
      }
    });
  });
  at::Tensor dsinks = sinks.defined() ? dsinks_partial.sum(/*dim=*/0) : at::empty({0}, q.options().dtype(dtype));
  return {dq, dk, dsinks};
}

}  // namespace attnscope
