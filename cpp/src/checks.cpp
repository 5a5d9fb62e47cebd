// The ops' door checks; see checks.h for what each validates.
#include "attnscope/checks.h"

#include <c10/util/Exception.h>

#include "nonfinite.h"

#include <cmath>
#include <initializer_list>
#include <vector>

namespace attnscope {
namespace {

struct Named {
  const char* name;
  const at::Tensor* tensor;  // nullptr or undefined: an absent optional argument
};

const at::Tensor* opt(const std::optional<at::Tensor>& t) { return t.has_value() ? &*t : nullptr; }

// Every present tensor on the device of the first one.
void one_device(const char* op, std::initializer_list<Named> tensors) {
  const Named* first = nullptr;
  for (const Named& n : tensors) {
    if (n.tensor == nullptr || !n.tensor->defined()) continue;
    if (first == nullptr) {
      first = &n;
      continue;
    }
    TORCH_CHECK_VALUE(n.tensor->device() == first->tensor->device(), op, ": all tensors must be on one device, got ",
                      first->name, " on ", first->tensor->device(), " and ", n.name, " on ", n.tensor->device());
  }
}

void floating(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK_TYPE(at::isFloatingType(t.scalar_type()), op, ": ", name,
                   " must be float16, bfloat16, float32 or float64, got ", t.scalar_type());
}

void rank(const char* op, const char* name, const at::Tensor& t, int64_t dims, const char* layout) {
  TORCH_CHECK_VALUE(t.dim() == dims, op, ": ", name, " must be ", layout, ", got a ", t.dim(),
                    "-D tensor of shape ", t.sizes());
}

// NaN or infinity in a floating `t` (NaN or +inf only, with allow_neg_inf) is an error naming the first such entry
// and why the op refuses it. One read of t (detail::has_nonfinite); the index search runs only on the error path.
void finite(const char* op, const char* name, const at::Tensor& t, const char* why, bool allow_neg_inf = false) {
  if (t.numel() == 0 || !at::isFloatingType(t.scalar_type())) return;
  if (!detail::has_nonfinite(t, allow_neg_inf)) return;
  const at::Tensor bad = detail::nonfinite_mask(t, allow_neg_inf);
  const at::Tensor index = at::nonzero(bad).select(0, 0).cpu();
  const double value = t.masked_select(bad).select(0, 0).item<double>();
  TORCH_CHECK_VALUE(false, op, ": ", name, " must be finite", allow_neg_inf ? " or -inf" : "", ", got ", value,
                    " at index ", at::IntArrayRef(index.data_ptr<int64_t>(), index.numel()), " (", why, ")");
}

constexpr const char* kAttentionNonFinite =
    "softmax over non-finite logits is undefined, and a row of them would read as a masked row";

// q, k and the spec: everything but the mask and sinks.
void attention_shapes(const char* op, const at::Tensor& q, const at::Tensor& k, const AttentionSpec& spec) {
  rank(op, "q", q, 4, "[batch, q_heads, q_len, head_dim]");
  rank(op, "k", k, 4, "[batch, kv_heads, k_len, head_dim]");
  floating(op, "q", q);
  floating(op, "k", k);
  TORCH_CHECK_VALUE(q.size(0) == k.size(0), op, ": q and k must have the same batch size, got q ", q.sizes(),
                    " and k ", k.sizes());
  TORCH_CHECK_VALUE(q.size(3) == k.size(3), op, ": head_dim of q and k differ: q has head_dim ", q.size(3),
                    " (shape ", q.sizes(), "), k has head_dim ", k.size(3), " (shape ", k.sizes(), ")");
  TORCH_CHECK_VALUE(q.size(3) >= 1, op, ": q and k need head_dim >= 1, got shape ", q.sizes());
  TORCH_CHECK_VALUE(q.size(1) >= 1 && k.size(1) >= 1, op, ": q_heads and kv_heads must be >= 1, got q_heads=",
                    q.size(1), " and kv_heads=", k.size(1));
  TORCH_CHECK_VALUE(q.size(1) % k.size(1) == 0, op, ": q_heads must be a multiple of kv_heads, got q_heads=",
                    q.size(1), " and kv_heads=", k.size(1));
  TORCH_CHECK_VALUE(spec.query_chunk >= 0, op, ": query_chunk must be >= 0 (0 = automatic), got ", spec.query_chunk);
  TORCH_CHECK_VALUE(spec.window >= 0, op, ": window must be >= 0 (0 = no sliding window), got ", spec.window);
  TORCH_CHECK_VALUE(std::isfinite(spec.softcap) && spec.softcap >= 0.0, op, ": softcap must be >= 0 and finite "
                    "(0 = off), got ", spec.softcap);
  TORCH_CHECK_VALUE(std::isfinite(spec.scale), op, ": scale must be finite, got ", spec.scale);
  TORCH_CHECK_VALUE(!(spec.is_causal || spec.window > 0) || q.size(2) <= k.size(2), op,
                    ": causal or windowed attention needs q_len <= k_len (queries are aligned to the end of the "
                    "keys), got q_len=", q.size(2), " and k_len=", k.size(2));
}

void attention_sinks(const char* op, const std::optional<at::Tensor>& sinks, const at::Tensor& q) {
  if (!sinks.has_value()) return;
  TORCH_CHECK_VALUE(sinks->dim() == 1 && sinks->size(0) == q.size(1), op, ": sinks must be [q_heads] = [", q.size(1),
                    "], got shape ", sinks->sizes());
  floating(op, "sinks", *sinks);
  finite(op, "sinks", *sinks, kAttentionNonFinite);
}

void attention_mask(const char* op, const std::optional<at::Tensor>& mask, const at::Tensor& q, const at::Tensor& k) {
  if (!mask.has_value()) return;
  const at::Tensor& m = *mask;
  TORCH_CHECK_VALUE(m.dim() >= 2 && m.dim() <= 4, op, ": mask must be broadcastable to [batch, 1 or q_heads, q_len, "
                    "k_len] with 2 to 4 dimensions, got a ", m.dim(), "-D tensor of shape ", m.sizes());
  TORCH_CHECK_TYPE(m.scalar_type() == at::kBool || at::isFloatingType(m.scalar_type()), op,
                   ": mask must be bool (True = attend) or an additive float mask, got ", m.scalar_type());
  const int64_t want[4] = {q.size(0), q.size(1), q.size(2), k.size(2)};
  for (int64_t d = 0; d < m.dim(); ++d) {
    const int64_t size = m.size(d), target = want[4 - m.dim() + d];
    TORCH_CHECK_VALUE(size == 1 || size == target, op, ": mask of shape ", m.sizes(),
                      " is not broadcastable to [batch=", want[0], ", 1 or q_heads=", want[1], ", q_len=", want[2],
                      ", k_len=", want[3], "]");
  }
  finite(op, "mask", m, "an additive mask takes -inf for masked keys; NaN and +inf make the softmax undefined",
         /*allow_neg_inf=*/true);
}

void attention_inputs(const char* op, const at::Tensor& q, const at::Tensor& k, const std::optional<at::Tensor>& mask,
                      const AttentionSpec& spec, const std::optional<at::Tensor>& sinks) {
  one_device(op, {{"q", &q}, {"k", &k}, {"mask", opt(mask)}, {"sinks", opt(sinks)}});
  attention_shapes(op, q, k, spec);
  attention_mask(op, mask, q, k);
  attention_sinks(op, sinks, q);
  finite(op, "q", q, kAttentionNonFinite);
  finite(op, "k", k, kAttentionNonFinite);
}

// [layer >= 1, batch, head >= 1, n, n] floating attention of the analysis ops.
void layered_attention(const char* op, const at::Tensor& attn) {
  rank(op, "attn", attn, 5, "[layer, batch, head, query, key]");
  floating(op, "attn", attn);
  TORCH_CHECK_VALUE(attn.size(0) >= 1 && attn.size(2) >= 1, op, ": attn needs at least one layer and one head, got "
                    "shape ", attn.sizes());
  TORCH_CHECK_VALUE(attn.size(3) == attn.size(4), op, ": attn must be square over query and key (self-attention "
                    "over one sequence), got shape ", attn.sizes());
}

// Rollout and flow: probabilities (finite, >= 0), a known head reduction and query rows in range.
void chained_attention(const char* op, const at::Tensor& attn, int64_t head_reduce, at::OptionalIntArrayRef rows) {
  layered_attention(op, attn);
  TORCH_CHECK_VALUE(head_reduce == 0 || head_reduce == 1, op, ": head_reduce must be 0 (mean) or 1 (max), got ",
                    head_reduce);
  const int64_t n = attn.size(3);
  if (rows.has_value()) {
    for (int64_t r : *rows) {
      TORCH_CHECK_VALUE(r >= 0 && r < n, op, ": rows has ", r, ", out of range for ", n, " query positions (valid: 0..",
                        n - 1, ")");
    }
  }
  if (attn.numel() == 0) return;
  auto [lo, hi] = at::aminmax(attn);  // NaN propagates into both
  const double mn = lo.item<double>(), mx = hi.item<double>();
  TORCH_CHECK_VALUE(mn >= 0.0 && std::isfinite(mx), op, ": attention weights must be finite and >= 0 "
                    "(probabilities); every weight is checked, and they have min ", mn, " and max ", mx);
}

// Segment bounds of the adaptive quadrature: 1-D, >= 2 entries, finite, strictly increasing, inside [0, 1].
void segment_bounds(const char* op, const at::Tensor& bounds) {
  TORCH_CHECK_VALUE(bounds.dim() == 1 && bounds.size(0) >= 2, op, ": bounds must be 1-D with at least 2 entries, got "
                    "shape ", bounds.sizes());
  floating(op, "bounds", bounds);
  const at::Tensor b = bounds.to(at::kDouble);
  finite(op, "bounds", b, "segment ends are points of [0, 1]");
  const double lo = b.min().item<double>(), hi = b.max().item<double>();
  TORCH_CHECK_VALUE(lo >= 0.0 && hi <= 1.0, op, ": bounds must lie in [0, 1], got min ", lo, " and max ", hi);
  const at::Tensor width = b.diff();
  const int64_t s = width.argmin().item<int64_t>();
  TORCH_CHECK_VALUE(width[s].item<double>() > 0.0, op, ": bounds must be strictly increasing, got bounds[", s, "] = ",
                    b[s].item<double>(), " >= bounds[", s + 1, "] = ", b[s + 1].item<double>());
}

}  // namespace

void check_attention_probs(const at::Tensor& q, const at::Tensor& k, const std::optional<at::Tensor>& mask,
                           const AttentionSpec& spec, const std::optional<at::Tensor>& sinks) {
  attention_inputs("attention_probs", q, k, mask, spec, sinks);
}

void check_attention_probs_backward(const at::Tensor& grad, const at::Tensor& probs, const at::Tensor& q,
                                    const at::Tensor& k, const AttentionSpec& spec,
                                    const std::optional<at::Tensor>& sinks) {
  constexpr const char* op = "attention_probs_backward";
  one_device(op, {{"grad", &grad}, {"probs", &probs}, {"q", &q}, {"k", &k}, {"sinks", opt(sinks)}});
  attention_shapes(op, q, k, spec);
  if (sinks.has_value()) {
    TORCH_CHECK_VALUE(sinks->dim() == 1 && sinks->size(0) == q.size(1), op, ": sinks must be [q_heads] = [",
                      q.size(1), "], got shape ", sinks->sizes());
  }
  const std::vector<int64_t> shape{q.size(0), q.size(1), q.size(2), k.size(2)};
  TORCH_CHECK_VALUE(probs.sizes() == at::IntArrayRef(shape), op, ": probs must be ", at::IntArrayRef(shape), ", got ",
                    probs.sizes());
  TORCH_CHECK_VALUE(grad.sizes() == at::IntArrayRef(shape), op, ": grad must be ", at::IntArrayRef(shape), ", got ",
                    grad.sizes());
  floating(op, "probs", probs);
  floating(op, "grad", grad);
}

void check_attention_probs_reduced(const at::Tensor& q, const at::Tensor& k, const std::optional<at::Tensor>& mask,
                                   const AttentionSpec& spec, const std::optional<at::Tensor>& sinks,
                                   at::OptionalIntArrayRef heads, const std::string& reduce, int64_t topk,
                                   const std::optional<at::Tensor>& value) {
  constexpr const char* op = "attention_probs_reduced";
  one_device(op, {{"q", &q}, {"value", opt(value)}});
  attention_inputs(op, q, k, mask, spec, sinks);
  if (value.has_value()) {  // the values of the layer output P.V, one row per key of each kv head
    floating(op, "value", *value);
    TORCH_CHECK_VALUE(value->dim() == 4 && value->size(0) == k.size(0) && value->size(1) == k.size(1) &&
                          value->size(2) == k.size(2),
                      op, ": value must be [batch=", k.size(0), ", kv_heads=", k.size(1), ", k_len=", k.size(2),
                      ", v_dim], got shape ", value->sizes());
  }
  if (heads.has_value()) {
    for (int64_t h : *heads) {
      TORCH_CHECK_VALUE(h >= 0 && h < q.size(1), op, ": head index ", h, " out of range: q has ", q.size(1),
                        " heads (0..", q.size(1) - 1, ")");
    }
  }
  TORCH_CHECK_VALUE(reduce == "none" || reduce == "mean" || reduce == "max" || reduce == "sum", op,
                    ": reduce must be one of 'none', 'mean', 'max', 'sum', got '", reduce, "'");
  TORCH_CHECK_VALUE(topk >= 0 && topk <= k.size(2), op, ": topk must be between 0 and k_len=", k.size(2), ", got ",
                    topk);
}

void check_attention_head_stats(const at::Tensor& q, const at::Tensor& k, const std::optional<at::Tensor>& mask,
                                const AttentionSpec& spec, const std::optional<at::Tensor>& sinks,
                                const std::optional<at::Tensor>& input_ids, const std::optional<at::Tensor>& valid,
                                int64_t induction_period) {
  constexpr const char* op = "attention_head_stats";
  one_device(op, {{"q", &q}, {"input_ids", opt(input_ids)}, {"valid", opt(valid)}});
  attention_inputs(op, q, k, mask, spec, sinks);
  for (const Named& n : {Named{"input_ids", opt(input_ids)}, Named{"valid", opt(valid)}}) {
    if (n.tensor == nullptr) continue;
    const at::Tensor& t = *n.tensor;
    TORCH_CHECK_VALUE(t.dim() == 2 && t.size(0) == k.size(0) && t.size(1) == k.size(2), op, ": ", n.name,
                      " must be [batch, k_len] = [", k.size(0), ", ", k.size(2), "], got shape ", t.sizes());
    TORCH_CHECK_TYPE(t.scalar_type() == at::kBool || at::isIntegralType(t.scalar_type(), /*includeBool=*/false), op,
                     ": ", n.name, " must be a bool or integer tensor, got ", t.scalar_type());
  }
  TORCH_CHECK_VALUE(induction_period == 0 || induction_period >= 2, op, ": induction_period must be 0 (off) or the "
                    "repeated segment's length >= 2, got ", induction_period);
}

void check_rollout(const at::Tensor& attn, int64_t head_reduce, at::OptionalIntArrayRef rows) {
  chained_attention("rollout", attn, head_reduce, rows);
}

void check_attention_flow(const at::Tensor& attn, int64_t head_reduce, at::OptionalIntArrayRef rows) {
  chained_attention("attention_flow", attn, head_reduce, rows);
}

void check_attention_grad_relevance(const at::Tensor& attn, const at::Tensor& grad) {
  constexpr const char* op = "attention_grad_relevance";
  one_device(op, {{"attn", &attn}, {"grad", &grad}});
  layered_attention(op, attn);
  floating(op, "grad", grad);
  TORCH_CHECK_VALUE(grad.sizes() == attn.sizes(), op, ": grad must have the shape of attn ", attn.sizes(), ", got ",
                    grad.sizes());
}

void check_quadrature_rule(const std::string& method, int64_t n) {
  constexpr const char* op = "quadrature_rule";
  const bool riemann = method == "riemann_left" || method == "riemann_right" || method == "riemann_middle";
  TORCH_CHECK_VALUE(riemann || method == "riemann_trapezoid" || method == "gausslegendre", op,
                    ": unknown rule '", method, "'; use one of riemann_left, riemann_right, riemann_middle, "
                    "riemann_trapezoid, gausslegendre");
  const int64_t least = method == "riemann_trapezoid" ? 2 : 1;
  TORCH_CHECK_VALUE(n >= least, op, ": ", method, " needs n >= ", least, " points, got ", n);
  TORCH_CHECK_VALUE(method != "gausslegendre" || n <= kMaxGaussLegendrePoints, op, ": gausslegendre takes at most ",
                    kMaxGaussLegendrePoints, " points (its nodes cost O(n^2)), got ", n,
                    "; use composite_gauss_legendre over segments, or a Riemann rule (O(n)), for more");
}

void check_composite_gauss_legendre(const at::Tensor& bounds, int64_t order) {
  constexpr const char* op = "composite_gauss_legendre";
  segment_bounds(op, bounds);
  TORCH_CHECK_VALUE(order >= 1 && order <= kMaxGaussLegendrePoints, op, ": order must be in 1..",
                    kMaxGaussLegendrePoints, ", got ", order);
}

void check_refine_segments(const at::Tensor& bounds, const at::Tensor& errors, double tolerance, int64_t max_new) {
  constexpr const char* op = "refine_segments";
  one_device(op, {{"bounds", &bounds}, {"errors", &errors}});
  segment_bounds(op, bounds);
  TORCH_CHECK_VALUE(errors.dim() == 1 && errors.size(0) == bounds.size(0) - 1, op, ": errors must be [",
                    bounds.size(0) - 1, "] (one per segment), got shape ", errors.sizes());
  floating(op, "errors", errors);
  finite(op, "errors", errors, "segments are split in order of their errors");
  TORCH_CHECK_VALUE(std::isfinite(tolerance) && tolerance >= 0.0, op, ": tolerance must be finite and >= 0, got ",
                    tolerance);
  TORCH_CHECK_VALUE(max_new >= 0, op, ": max_new must be >= 0, got ", max_new);
}

void check_topk_merge(const at::Tensor& values, const at::Tensor& keys, const at::Tensor& new_values,
                      const at::Tensor& new_keys) {
  constexpr const char* op = "topk_merge";
  one_device(op, {{"values", &values}, {"keys", &keys}, {"new_values", &new_values}, {"new_keys", &new_keys}});
  rank(op, "values", values, 2, "[units, k]");
  rank(op, "new_values", new_values, 2, "[rows, units]");
  TORCH_CHECK_VALUE(values.size(1) >= 1, op, ": k must be >= 1, got values of shape ", values.sizes());
  TORCH_CHECK_VALUE(keys.sizes() == values.sizes(), op, ": keys must have the shape of values ", values.sizes(),
                    ", got ", keys.sizes());
  TORCH_CHECK_VALUE(new_values.size(1) == values.size(0), op, ": new_values has ", new_values.size(1),
                    " units, the running lists have ", values.size(0));
  TORCH_CHECK_VALUE(new_keys.dim() == 1 && new_keys.size(0) == new_values.size(0), op, ": new_keys must be [rows] = [",
                    new_values.size(0), "], got shape ", new_keys.sizes());
  floating(op, "values", values);
  TORCH_CHECK_TYPE(new_values.scalar_type() == values.scalar_type(), op, ": new_values must have the dtype of values (",
                   values.scalar_type(), "), got ", new_values.scalar_type());
  TORCH_CHECK_TYPE(keys.scalar_type() == at::kLong && new_keys.scalar_type() == at::kLong, op,
                   ": keys and new_keys must be int64, got ", keys.scalar_type(), " and ", new_keys.scalar_type());
}

void check_vocab_projection(const at::Tensor& hidden, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                            const std::optional<at::Tensor>& reference, const at::Tensor& targets, int64_t k,
                            double softcap, int64_t vocab_chunk, int64_t row_block) {
  constexpr const char* op = "vocab_projection";
  one_device(op, {{"hidden", &hidden}, {"weight", &weight}, {"bias", opt(bias)}, {"reference", opt(reference)},
                  {"targets", &targets}});
  rank(op, "hidden", hidden, 3, "[groups, rows, d]");
  rank(op, "weight", weight, 2, "[vocab, d]");
  floating(op, "hidden", hidden);
  floating(op, "weight", weight);
  const int64_t P = hidden.size(1), d = hidden.size(2), V = weight.size(0);
  TORCH_CHECK_VALUE(weight.size(1) == d && V >= 1, op, ": weight must be [vocab >= 1, d=", d, "], got ", weight.sizes());
  TORCH_CHECK_VALUE(k >= 1 && k <= V, op, ": k must be in 1..", V, " (the vocabulary size), got ", k);
  TORCH_CHECK_VALUE(std::isfinite(softcap) && softcap >= 0.0, op, ": softcap must be >= 0 and finite (0 = none), got ",
                    softcap);
  TORCH_CHECK_VALUE(vocab_chunk >= 0 && row_block >= 0, op, ": vocab_chunk and row_block must be >= 0 (0 = automatic), "
                    "got ", vocab_chunk, " and ", row_block);
  if (bias.has_value()) {
    TORCH_CHECK_VALUE(bias->dim() == 1 && bias->size(0) == V, op, ": bias must be [vocab=", V, "], got ", bias->sizes());
    floating(op, "bias", *bias);
  }
  if (reference.has_value()) {
    TORCH_CHECK_VALUE(reference->dim() == 2 && reference->size(0) == P && reference->size(1) == d, op,
                      ": reference must be [rows=", P, ", d=", d, "], got ", reference->sizes());
    floating(op, "reference", *reference);
  }
  TORCH_CHECK_VALUE(targets.dim() == 2 && targets.size(0) == P, op, ": targets must be [rows=", P, ", T], got ",
                    targets.sizes());
  TORCH_CHECK_TYPE(targets.scalar_type() == at::kLong, op, ": targets must be int64, got ", targets.scalar_type());
  if (targets.numel() > 0) {
    const int64_t lo = targets.min().item<int64_t>(), hi = targets.max().item<int64_t>();
    TORCH_CHECK_VALUE(lo >= 0 && hi < V, op, ": target token ids must be in 0..", V - 1, ", got ", lo < 0 ? lo : hi);
  }
  constexpr const char* why = "a top-k, rank or log-sum-exp over non-finite logits is undefined";
  finite(op, "hidden", hidden, why);
  finite(op, "weight", weight, why);
  if (bias.has_value()) finite(op, "bias", *bias, why);
  if (reference.has_value()) finite(op, "reference", *reference, why);
}

}  // namespace attnscope
