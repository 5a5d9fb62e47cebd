// Device-generic attention ops (see attnscope/generic/attention.h): one chunk of query rows at a time, all
// (batch, head) pairs at once, in ATen operations.
#include "attnscope/generic/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "../prob_rows.h"

namespace attnscope {
namespace generic {

using detail::Geometry;

int64_t auto_query_chunk(int64_t batch_heads, int64_t q_len, int64_t k_len) {
  constexpr int64_t kElements = int64_t{1} << 24;
  return std::max<int64_t>(1, std::min<int64_t>(q_len, kElements / std::max<int64_t>(batch_heads * k_len, 1)));
}

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// The validated attention inputs in the compute dtype, and the q heads being computed (all, or a selection).
struct Inputs {
  Geometry g;
  AttentionSpec spec;
  at::ScalarType dtype;
  at::Tensor q, k;      // [B, H, Q, D], [B, KV, K, D] in dtype
  at::Tensor mask;      // [B, H, Q, K] broadcast view (bool or dtype), or undefined
  at::Tensor sinks;     // [H] in dtype, or undefined
  at::Tensor heads;     // int64 q heads computed, or undefined for all (grouped product, no kv copy)
  at::Tensor k_sel;     // [B, S, K, D]: the kv head of each selected q head (only with a selection)
  int64_t n_heads = 0;  // S
};

// The argument checks every attention op shares (the CPU kernels' checks: detail::check_qk, check_sinks, the mask).
Inputs check_attention_args(const at::Tensor& q, const at::Tensor& k, const std::optional<at::Tensor>& mask,
                            const AttentionSpec& spec, const std::optional<at::Tensor>& sinks) {
  Inputs in;
  in.g = detail::check_qk(q, k, spec);
  detail::check_sinks(sinks, q);
  in.spec = spec;
  in.dtype = detail::compute_dtype(q.scalar_type());
  const detail::MaskView view = detail::prepare_mask(mask, in.g, in.dtype, q.device());
  if (view.present) in.mask = view.holder;
  in.q = q.to(in.dtype);
  in.k = k.to(in.dtype);
  if (sinks) in.sinks = sinks->to(in.dtype);
  in.n_heads = in.g.heads;
  return in;
}

// Restricts the computed q heads to `heads` (validated like the CPU kernel's selection).
void select_heads(Inputs& in, const std::vector<int64_t>& heads) {
  for (int64_t h : heads) {
    TORCH_CHECK_VALUE(h >= 0 && h < in.g.heads, "head index ", h, " out of range: q has ", in.g.heads, " heads (0..",
                      in.g.heads - 1, ")");
  }
  std::vector<int64_t> all(static_cast<size_t>(in.g.heads));
  std::iota(all.begin(), all.end(), 0);
  if (heads.empty() || heads == all) return;
  in.heads = at::tensor(heads, at::kLong).to(in.q.device());
  in.k_sel = in.k.index_select(/*dim=*/1, at::div(in.heads, in.g.group, /*rounding_mode=*/"floor"));
  in.n_heads = static_cast<int64_t>(heads.size());
}

int64_t chunk_rows(const Inputs& in) {
  const int64_t c = in.spec.query_chunk > 0 ? in.spec.query_chunk
                                            : auto_query_chunk(in.g.batch * in.n_heads, in.g.q_len, in.g.k_len);
  return std::max<int64_t>(1, std::min<int64_t>(c, std::max<int64_t>(in.g.q_len, 1)));
}

// Scaled logits q.k * scale of rows [q0, q0 + n) before soft-capping and masking: [B, S, n, K].
at::Tensor raw_logits(const Inputs& in, int64_t q0, int64_t n) {
  const Geometry& g = in.g;
  at::Tensor qc = in.q.narrow(/*dim=*/2, q0, n);
  at::Tensor logits;
  if (in.heads.defined()) {
    logits = at::matmul(qc.index_select(/*dim=*/1, in.heads), in.k_sel.transpose(-1, -2));
  } else {
    // q head h = kv * group + r reads kv head `kv`: group the q heads per kv head, one product per kv head.
    at::Tensor grouped = qc.reshape({g.batch, g.kv_heads, g.group * n, g.head_dim});
    logits = at::matmul(grouped, in.k.transpose(-1, -2)).view({g.batch, g.heads, n, g.k_len});
  }
  return logits.mul_(in.spec.scale);
}

// Which keys causality and the window leave visible to rows [q0, q0 + n): [n, K] bool, or undefined for all.
at::Tensor visible_keys(const Inputs& in, int64_t q0, int64_t n) {
  if (!in.spec.is_causal && in.spec.window <= 0) return at::Tensor();
  const auto opts = at::TensorOptions().dtype(at::kLong).device(in.q.device());
  at::Tensor pos = at::arange(q0 + in.g.offset, q0 + in.g.offset + n, opts).unsqueeze(1);
  at::Tensor key = at::arange(in.g.k_len, opts).unsqueeze(0);
  at::Tensor vis = key <= pos;
  if (in.spec.window > 0) vis = vis & (pos - key < in.spec.window);
  return vis;
}

// Probabilities of rows [q0, q0 + n) for the computed heads: [B, S, n, K] in the compute dtype. Masked and
// invisible keys are zero; rows with no visible key and no sink are zeros.
at::Tensor chunk_probs(const Inputs& in, int64_t q0, int64_t n) {
  at::Tensor logits = raw_logits(in, q0, n);
  const double cap = in.spec.softcap;
  if (cap > 0) logits = logits.div_(cap).tanh_().mul_(cap);
  if (in.mask.defined()) {
    at::Tensor m = in.mask.narrow(/*dim=*/2, q0, n);
    if (in.heads.defined()) m = m.index_select(/*dim=*/1, in.heads);
    if (m.scalar_type() == at::kBool) {
      logits.masked_fill_(m.logical_not(), kNegInf);
    } else {
      logits.add_(m);
    }
  }
  const at::Tensor vis = visible_keys(in, q0, n);
  if (vis.defined()) logits.masked_fill_(vis.logical_not(), kNegInf);
  at::Tensor top = std::get<0>(logits.max(/*dim=*/-1, /*keepdim=*/true));
  at::Tensor sinks;
  if (in.sinks.defined()) {
    sinks = (in.heads.defined() ? in.sinks.index_select(0, in.heads) : in.sinks).view({1, in.n_heads, 1, 1});
    top = at::maximum(top, sinks);
  }
  const at::Tensor empty_row = top == kNegInf;
  const at::Tensor safe_top = top.masked_fill(empty_row, 0.0);
  at::Tensor probs = logits.sub_(safe_top).exp_();
  at::Tensor total = probs.sum(/*dim=*/-1, /*keepdim=*/true);
  if (sinks.defined()) total = total + (sinks - safe_top).exp();
  return probs.mul_(total.reciprocal()).masked_fill_(empty_row, 0.0);
}

// Calls fn(q0, n) for every chunk of query rows.
template <typename F>
void for_chunks(const Inputs& in, F&& fn) {
  const int64_t chunk = chunk_rows(in);
  for (int64_t q0 = 0; q0 < in.g.q_len; q0 += chunk) fn(q0, std::min(chunk, in.g.q_len - q0));
}

}  // namespace

at::Tensor attention_probs(const at::Tensor& q, const at::Tensor& k, const std::optional<at::Tensor>& mask,
                           const AttentionSpec& spec, const std::optional<at::Tensor>& sinks) {
  const Inputs in = check_attention_args(q, k, mask, spec, sinks);
  const Geometry& g = in.g;
  at::Tensor out = at::empty({g.batch, g.heads, g.q_len, g.k_len}, in.q.options());
  if (out.numel() == 0) return out;
  for_chunks(in, [&](int64_t q0, int64_t n) { out.narrow(/*dim=*/2, q0, n).copy_(chunk_probs(in, q0, n)); });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> attention_probs_backward(
    const at::Tensor& grad, const at::Tensor& probs, const at::Tensor& q, const at::Tensor& k,
    const AttentionSpec& spec_in, const std::optional<at::Tensor>& sinks) {
  AttentionSpec spec = spec_in;
  spec.is_causal = false;  // masked entries have zero probability: the backward needs no mask
  spec.window = 0;
  const Inputs in = check_attention_args(q, k, std::nullopt, spec, sinks);
  const Geometry& g = in.g;
  const std::vector<int64_t> p_shape{g.batch, g.heads, g.q_len, g.k_len};
  TORCH_CHECK_VALUE(probs.sizes() == p_shape, "probs must be ", at::IntArrayRef(p_shape), ", got ", probs.sizes());
  TORCH_CHECK_VALUE(grad.sizes() == p_shape, "grad must be ", at::IntArrayRef(p_shape), ", got ", grad.sizes());
  at::Tensor dq = at::zeros({g.batch, g.heads, g.q_len, g.head_dim}, in.q.options());
  at::Tensor dk = at::zeros({g.batch, g.kv_heads, g.k_len, g.head_dim}, in.q.options());
  at::Tensor dsinks = at::zeros({in.sinks.defined() ? g.heads : 0}, in.q.options());
  for_chunks(in, [&](int64_t q0, int64_t n) {
    const at::Tensor p = probs.narrow(2, q0, n).to(in.dtype);
    const at::Tensor gr = grad.narrow(2, q0, n).to(in.dtype);
    const at::Tensor dot = (gr * p).sum(/*dim=*/-1, /*keepdim=*/true);
    at::Tensor ds = p * (gr - dot);  // softmax backward; zero wherever p is (masked entries)
    if (spec.softcap > 0) {
      const at::Tensor th = raw_logits(in, q0, n).div_(spec.softcap).tanh_();
      ds.mul_(1.0 - th * th);
    }
    ds.mul_(spec.scale);  // d/d(q.k): the scale is applied before the cap
    const at::Tensor ds_grouped = ds.reshape({g.batch, g.kv_heads, g.group * n, g.k_len});
    dq.narrow(2, q0, n).copy_(at::matmul(ds_grouped, in.k).view({g.batch, g.heads, n, g.head_dim}));
    const at::Tensor q_grouped = in.q.narrow(2, q0, n).reshape({g.batch, g.kv_heads, g.group * n, g.head_dim});
    dk.add_(at::matmul(ds_grouped.transpose(-1, -2), q_grouped));
    // d/d(sink) = -p_sink * sum_j g_j p_j, with p_sink = 1 - sum_j p_j.
    if (in.sinks.defined()) dsinks.sub_(((1.0 - p.sum(-1)) * dot.squeeze(-1)).sum(at::IntArrayRef{0, 2}));
  });
  return {dq, dk, dsinks};
}

namespace {

// out[b, i, h, :] = sum_j p[b, h, i, j] v[b, h / group, j, :] over every q head, a chunk of rows at a time.
at::Tensor probs_times_values(const Inputs& all, const at::Tensor& value) {
  const Geometry& g = all.g;  // value is checked at the door (check_attention_probs_reduced)
  const at::Tensor v = value.to(all.dtype);
  const int64_t v_dim = v.size(3);
  at::Tensor out = at::empty({g.batch, g.heads, g.q_len, v_dim}, all.q.options());
  if (g.batch == 0 || g.q_len == 0 || g.heads == 0) return out.permute({0, 2, 1, 3}).contiguous();
  for_chunks(all, [&](int64_t q0, int64_t n) {
    const at::Tensor p = chunk_probs(all, q0, n).reshape({g.batch, g.kv_heads, g.group * n, g.k_len});
    out.narrow(2, q0, n).copy_(at::matmul(p, v).view({g.batch, g.heads, n, v_dim}));
  });
  return out.permute({0, 2, 1, 3}).contiguous();
}

}  // namespace

ReducedAttention attention_probs_reduced(const at::Tensor& q, const at::Tensor& k,
                                         const std::optional<at::Tensor>& mask, const AttentionSpec& spec,
                                         const std::optional<at::Tensor>& sinks, const ReduceSpec& rs,
                                         const std::optional<at::Tensor>& value) {
  Inputs in = check_attention_args(q, k, mask, spec, sinks);
  const at::Tensor output = value ? probs_times_values(in, *value) : at::empty({0}, in.q.options());
  select_heads(in, rs.heads);
  const Geometry& g = in.g;
  TORCH_CHECK_VALUE(rs.topk >= 0 && rs.topk <= g.k_len, "topk must be between 0 and k_len=", g.k_len, ", got ",
                    rs.topk);
  const int64_t S = in.n_heads;
  const auto opts = in.q.options();
  const bool reduced = rs.reduce != HeadReduce::kNone;
  ReducedAttention out;
  if (!rs.keep_weights) {
    out.weights = at::empty({0}, opts);
  } else {
    out.weights = reduced ? at::empty({g.batch, g.q_len, g.k_len}, opts) : at::empty({g.batch, S, g.q_len, g.k_len}, opts);
  }
  out.topk_values = at::empty(rs.topk > 0 ? std::vector<int64_t>{g.batch, S, g.q_len, rs.topk} : std::vector<int64_t>{0}, opts);
  out.topk_indices = at::empty(out.topk_values.sizes(), opts.dtype(at::kLong));
  out.entropy = at::empty(rs.entropy ? std::vector<int64_t>{g.batch, S, g.q_len} : std::vector<int64_t>{0}, opts);
  out.output = output;
  if (g.batch == 0 || g.q_len == 0 || S == 0) return out;
  for_chunks(in, [&](int64_t q0, int64_t n) {
    const at::Tensor p = chunk_probs(in, q0, n);  // [B, S, n, K]
    if (rs.keep_weights && !reduced) out.weights.narrow(2, q0, n).copy_(p);
    if (rs.keep_weights && reduced) {
      at::Tensor w = rs.reduce == HeadReduce::kMax ? p.amax(/*dim=*/1) : p.sum(/*dim=*/1);
      if (rs.reduce == HeadReduce::kMean) w.mul_(1.0 / static_cast<double>(S));
      out.weights.narrow(1, q0, n).copy_(w);
    }
    if (rs.entropy) {
      out.entropy.narrow(2, q0, n).copy_(-at::where(p > 0, p * p.log(), at::zeros_like(p)).sum(-1));
    }
    if (rs.topk > 0) {
      // A stable descending sort: ties keep the lower key index first, as the CPU kernel does.
      auto [values, indices] = p.sort(/*stable=*/true, /*dim=*/-1, /*descending=*/true);
      out.topk_values.narrow(2, q0, n).copy_(values.narrow(-1, 0, rs.topk));
      out.topk_indices.narrow(2, q0, n).copy_(indices.narrow(-1, 0, rs.topk));
    }
  });
  return out;
}

namespace {

// Row-wise facts of one chunk, shared by every head: [B, n] masks and the key positions the statistics read.
struct RowFacts {
  at::Tensor row_ok, prev_ok, ind_ok, first_ok;  // [B, n] bool
  at::Tensor dup;                                  // [B, n, K] bool: earlier valid keys with the row's token id
  at::Tensor prev_at, ind_at, first_at;            // [B, n] int64 key indices (clamped into range)
};

RowFacts row_facts(const Geometry& g, const at::Tensor& valid, const at::Tensor& ids, int64_t P, int64_t q0,
                   int64_t n) {
  const auto lopts = at::TensorOptions().dtype(at::kLong).device(valid.device());
  const at::Tensor pos = at::arange(q0 + g.offset, q0 + g.offset + n, lopts).unsqueeze(0).expand({g.batch, n});
  auto clamp = [&](const at::Tensor& x) { return x.clamp(0, std::max<int64_t>(g.k_len - 1, 0)); };
  auto is_valid = [&](const at::Tensor& x) { return (x >= 0) & (x < g.k_len) & valid.gather(1, clamp(x)); };
  auto id_at = [&](const at::Tensor& x) { return ids.gather(1, clamp(x)); };
  RowFacts f;
  f.row_ok = is_valid(pos);
  f.prev_ok = f.row_ok & is_valid(pos - 1);
  const at::Tensor key = at::arange(g.k_len, lopts).view({1, 1, g.k_len});
  if (ids.defined() && P > 0) {
    f.ind_ok = f.row_ok & is_valid(pos - P) & is_valid(pos - P + 1) & (id_at(pos) == id_at(pos - P));
  } else {
    f.ind_ok = at::zeros_like(f.row_ok);
  }
  if (ids.defined()) {
    f.dup = (key < pos.unsqueeze(-1)) & valid.unsqueeze(1) & (ids.unsqueeze(1) == id_at(pos).unsqueeze(-1)) &
            f.row_ok.unsqueeze(-1);
  } else {
    f.dup = at::zeros({g.batch, n, g.k_len}, lopts.dtype(at::kBool));
  }
  const at::Tensor first = at::where(valid, at::arange(g.k_len, lopts).unsqueeze(0), g.k_len).amin(/*dim=*/1);
  f.first_ok = f.row_ok & (first < g.k_len).unsqueeze(1);
  f.prev_at = clamp(pos - 1);
  f.ind_at = clamp(pos - P + 1);
  f.first_at = clamp(first).unsqueeze(1).expand({g.batch, n});
  return f;
}

}  // namespace

HeadStatSums attention_head_stats(const at::Tensor& q, const at::Tensor& k, const std::optional<at::Tensor>& mask,
                                  const AttentionSpec& spec, const std::optional<at::Tensor>& sinks,
                                  const std::optional<at::Tensor>& input_ids, const std::optional<at::Tensor>& valid,
                                  int64_t induction_period) {
  const Inputs in = check_attention_args(q, k, mask, spec, sinks);
  const Geometry& g = in.g;
  TORCH_CHECK_VALUE(induction_period == 0 || induction_period >= 2,
                    "induction_period must be 0 (off) or the repeated segment's length >= 2, got ", induction_period);
  const at::Tensor ids = input_ids ? detail::per_position(*input_ids, "input_ids", g, at::kLong, q.device()) : at::Tensor();
  const at::Tensor ok = valid ? detail::per_position(*valid, "valid", g, at::kBool, q.device())
                              : at::ones({g.batch, g.k_len}, q.options().dtype(at::kBool));
  const auto dopts = q.options().dtype(at::kDouble);
  at::Tensor sums = at::zeros({g.batch, g.heads, kNumHeadStats}, dopts);
  at::Tensor counts = at::zeros({g.batch, kNumHeadStats}, dopts.dtype(at::kLong));
  if (g.batch == 0 || g.q_len == 0 || g.k_len == 0 || g.heads == 0) return {sums, counts};
  const auto opts = q.options().dtype(at::kLong).device(q.device());
  for_chunks(in, [&](int64_t q0, int64_t n) {
    const RowFacts f = row_facts(g, ok, ids, induction_period, q0, n);
    const at::Tensor p = chunk_probs(in, q0, n);  // [B, H, n, K]
    auto picked = [&](const at::Tensor& at_key, const at::Tensor& rows) {  // sum over rows of p[row, at_key]
      const at::Tensor idx = at_key.unsqueeze(1).unsqueeze(-1).expand({g.batch, g.heads, n, 1});
      return (p.gather(-1, idx).squeeze(-1).to(at::kDouble) * rows.unsqueeze(1)).sum(-1);
    };
    const at::Tensor row_ok = f.row_ok.unsqueeze(1).to(at::kDouble);
    const at::Tensor pos = at::arange(q0 + g.offset, q0 + g.offset + n, opts).view({1, 1, n, 1});
    const at::Tensor dist = (pos - at::arange(g.k_len, opts).view({1, 1, 1, g.k_len})).abs().to(at::kDouble);
    const at::Tensor plogp = at::where(p > 0, p * p.log(), at::zeros_like(p)).to(at::kDouble);
    const at::Tensor stats[kNumHeadStats] = {
        picked(f.prev_at, f.prev_ok),
        picked(f.ind_at, f.ind_ok),
        (p.to(at::kDouble) * f.dup.unsqueeze(1)).sum({2, 3}),
        (-plogp.sum(-1) * row_ok).sum(-1),
        picked(f.first_at, f.first_ok),
        ((p.to(at::kDouble) * dist).sum(-1) * row_ok).sum(-1),
    };
    sums.add_(at::stack(stats, /*dim=*/-1));
    const at::Tensor dup_ok = f.dup.any(/*dim=*/-1);
    const at::Tensor rows[kNumHeadStats] = {f.prev_ok, f.ind_ok, dup_ok, f.row_ok, f.first_ok, f.row_ok};
    counts.add_(at::stack(rows, /*dim=*/-1).sum(/*dim=*/1));
  });
  return {sums, counts};
}

}  // namespace generic
}  // namespace attnscope
