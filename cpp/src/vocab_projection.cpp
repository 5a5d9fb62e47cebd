// Streaming vocabulary projection (see attnscope/vocab_projection.h).
//
// Per row the state is an online log-sum-exp (running max m, s = sum e^(z-m)), the entropy's running sum
// t = sum e^(z-m) (z-m), and for the KL the reference row's running max mf, sf = sum e^(f-mf) and
// u = sum e^(f-mf) (f-z). At the end lse = m + log s, H = log s - t/s, KL = u/sf - lse_f + lse.
// Top-k and target ranks come from one scalar scan of each tile (a heap per row); the sums use ATen's vectorised
// kernels on the tile, accumulated across chunks in float64.
#include "attnscope/vocab_projection.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

namespace attnscope {
namespace {

constexpr int64_t kDefaultVocabChunk = 2048;
constexpr int64_t kTileElements = int64_t{1} << 20;  // about 1M logits per tile when row_block is automatic

// Heap order: "a before b" when a is better (larger logit; on ties the smaller id). With this comparator the heap's
// front is the worst kept entry, and the result does not depend on the order in which chunks arrive.
template <typename T>
bool better(const std::pair<T, int64_t>& a, const std::pair<T, int64_t>& b) {
  return a.first > b.first || (a.first == b.first && a.second < b.second);
}

// Running statistics of one block of rows (doubles, one entry per layer row or per reference row).
struct BlockState {
  at::Tensor m, s, t;  // [R]: running max, sum e^(z-m), sum e^(z-m) (z-m)
  at::Tensor mf, sf;   // [pb]: the reference rows' running max and sum e^(f-mf)
  at::Tensor u;        // [G, pb]: sum e^(f-mf) (f-z)
};

// Top-k heaps, target logits and rank counts: one scan of the raw tile per row (before it is shifted in place).
template <typename scalar_t>
void scan_tile(const at::Tensor& zl, int64_t v0, int64_t pb, int64_t k, const at::Tensor& targets,
               const at::Tensor& target_pre, std::vector<std::vector<std::pair<scalar_t, int64_t>>>& heaps,
               std::vector<int64_t>& counts, std::vector<double>& target_z) {
  const int64_t n_rows = zl.size(0), c = zl.size(1), T = targets.size(1);
  const scalar_t* zp = zl.data_ptr<scalar_t>();
  auto tgt = targets.accessor<int64_t, 2>();
  auto tpre = target_pre.accessor<scalar_t, 2>();
  at::parallel_for(0, n_rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const scalar_t* zr = zp + r * c;
      auto& heap = heaps[r];
      for (int64_t j = 0; j < c; ++j) {
        if (static_cast<int64_t>(heap.size()) < k) {
          heap.emplace_back(zr[j], v0 + j);
          std::push_heap(heap.begin(), heap.end(), better<scalar_t>);
        } else if (zr[j] >= heap.front().first) {
          std::pair<scalar_t, int64_t> cand{zr[j], v0 + j};
          if (better(cand, heap.front())) {
            std::pop_heap(heap.begin(), heap.end(), better<scalar_t>);
            heap.back() = cand;
            std::push_heap(heap.begin(), heap.end(), better<scalar_t>);
          }
        }
      }
      const int64_t p = r % pb;
      for (int64_t ti = 0; ti < T; ++ti) {
        const int64_t id = tgt[p][ti];
        const scalar_t thr = tpre[r][ti];
        int64_t above = 0;
        for (int64_t j = 0; j < c; ++j) above += zr[j] > thr;
        if (id >= v0 && id < v0 + c) {
          above -= zr[id - v0] > thr;  // the target itself does not count
          target_z[r * T + ti] = static_cast<double>(zr[id - v0]);
        }
        counts[r * T + ti] += above;
      }
    }
  });
}

// The sums of one tile, in ATen's vectorised kernels, one group (layer) of rows at a time so that temporaries are a
// [rows of one group, chunk] slice, not a second tile. The tile is shifted in place.
void accumulate_tile(at::Tensor zl, const at::Tensor& zf, int64_t G, int64_t pb, bool first, BlockState& st) {
  const auto dbl = at::kDouble;
  const int64_t c = zl.size(1);
  at::Tensor zg = zl.view({G, pb, c});
  if (zf.defined()) {
    at::Tensor mf_new = at::maximum(st.mf, std::get<0>(zf.max(1)).to(dbl));
    at::Tensor ef = (zf - mf_new.to(zf.scalar_type()).unsqueeze(1)).exp_();  // [pb, c]
    at::Tensor u_tile = at::empty({G, pb}, st.mf.options());
    for (int64_t g = 0; g < G; ++g) {
      u_tile[g] = (zf - zg[g]).mul_(ef).sum(1, false, dbl);  // sum e^(f-mf) (f - z)
    }
    if (first) {
      st.sf = ef.sum(1, false, dbl);
      st.u = u_tile;
    } else {
      at::Tensor scale = (st.mf - mf_new).exp_();
      st.sf = st.sf * scale + ef.sum(1, false, dbl);
      st.u = st.u * scale.unsqueeze(0) + u_tile;
    }
    st.mf = mf_new;
  }
  at::Tensor m_new = at::maximum(st.m, std::get<0>(zl.max(1)).to(dbl));
  zl.sub_(m_new.to(zl.scalar_type()).unsqueeze(1));  // d = z - m
  at::Tensor s_tile = at::empty({G, pb}, st.m.options()), t_tile = at::empty({G, pb}, st.m.options());
  for (int64_t g = 0; g < G; ++g) {
    at::Tensor e = zg[g].exp();
    s_tile[g] = e.sum(1, false, dbl);
    t_tile[g] = e.mul_(zg[g]).sum(1, false, dbl);
  }
  s_tile = s_tile.reshape({-1});
  t_tile = t_tile.reshape({-1});
  if (first) {
    st.s = s_tile;
    st.t = t_tile;
  } else {
    at::Tensor scale = (st.m - m_new).exp_();
    st.t = scale * (st.t + (st.m - m_new) * st.s) + t_tile;
    st.s = st.s * scale + s_tile;
  }
  st.m = m_new;
}

template <typename scalar_t>
void project_block(const at::Tensor& rows, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                   const at::Tensor& targets, int64_t G, int64_t pb, bool has_ref, int64_t k, double softcap,
                   int64_t chunk, BlockState& st, std::vector<std::vector<std::pair<scalar_t, int64_t>>>& heaps,
                   const at::Tensor& target_pre, std::vector<int64_t>& counts, std::vector<double>& target_z) {
  const int64_t V = weight.size(0);
  const int64_t n_rows = G * pb;
  const auto dbl_opts = rows.options().dtype(at::kDouble);
  st.m = at::full({n_rows}, -std::numeric_limits<double>::infinity(), dbl_opts);
  st.mf = at::full({pb}, -std::numeric_limits<double>::infinity(), dbl_opts);
  st.u = at::zeros({G, pb}, dbl_opts);
  st.sf = at::ones({pb}, dbl_opts);
  for (int64_t v0 = 0; v0 < V; v0 += chunk) {
    const int64_t c = std::min(chunk, V - v0);
    at::Tensor w = weight.narrow(0, v0, c).to(rows.scalar_type());
    at::Tensor z = at::mm(rows, w.t());
    if (bias.has_value()) z.add_(bias->narrow(0, v0, c).to(rows.scalar_type()));
    if (softcap > 0.0) z.div_(softcap).tanh_().mul_(softcap);
    at::Tensor zl = z.narrow(0, 0, n_rows);
    at::Tensor zf = has_ref ? z.narrow(0, n_rows, pb) : at::Tensor();
    scan_tile<scalar_t>(zl, v0, pb, k, targets, target_pre, heaps, counts, target_z);
    accumulate_tile(zl, zf, G, pb, v0 == 0, st);
  }
}

}  // namespace

VocabProjection vocab_projection(const at::Tensor& hidden, const at::Tensor& weight,
                                 const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& reference,
                                 const at::Tensor& targets, int64_t k, double softcap, int64_t vocab_chunk,
                                 int64_t row_block) {
  TORCH_CHECK(hidden.dim() == 3, "hidden must be [groups, rows, d], got ", hidden.dim(), "D");
  TORCH_CHECK(weight.dim() == 2, "weight must be [vocab, d], got ", weight.dim(), "D");
  const int64_t G = hidden.size(0), P = hidden.size(1), d = hidden.size(2), V = weight.size(0);
  TORCH_CHECK(weight.size(1) == d, "weight has d = ", weight.size(1), ", hidden has d = ", d);
  TORCH_CHECK(V >= 1, "weight has an empty vocabulary");
  TORCH_CHECK(k >= 1 && k <= V, "k must be in 1..", V, " (the vocabulary size), got ", k);
  TORCH_CHECK(softcap >= 0.0, "softcap must be >= 0 (0 = none), got ", softcap);
  TORCH_CHECK(vocab_chunk >= 0 && row_block >= 0, "vocab_chunk and row_block must be >= 0 (0 = automatic), got ",
              vocab_chunk, " and ", row_block);
  TORCH_CHECK(hidden.is_floating_point() && weight.is_floating_point(), "hidden and weight must be floating point");
  TORCH_CHECK(hidden.device().is_cpu() && weight.device().is_cpu(), "vocab_projection's kernel is CPU only");
  if (bias.has_value()) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == V, "bias must be [vocab=", V, "], got ", bias->sizes());
  }
  const bool has_ref = reference.has_value();
  if (has_ref) {
    TORCH_CHECK(reference->dim() == 2 && reference->size(0) == P && reference->size(1) == d,
                "reference must be [rows=", P, ", d=", d, "], got ", reference->sizes());
  }
  TORCH_CHECK(targets.dim() == 2 && targets.size(0) == P, "targets must be [rows=", P, ", T], got ", targets.sizes());
  TORCH_CHECK(targets.scalar_type() == at::kLong, "targets must be int64, got ", targets.scalar_type());
  const int64_t T = targets.size(1);
  at::Tensor tg = targets.contiguous();
  if (tg.numel() > 0) {
    const int64_t lo = tg.min().item<int64_t>(), hi = tg.max().item<int64_t>();
    TORCH_CHECK(lo >= 0 && hi < V, "target token ids must be in 0..", V - 1, ", got ", lo < 0 ? lo : hi);
  }

  const auto compute = hidden.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor h = hidden.to(compute).contiguous();
  const at::Tensor ref = has_ref ? reference->to(compute).contiguous() : at::Tensor();
  const int64_t chunk = vocab_chunk > 0 ? vocab_chunk : kDefaultVocabChunk;
  const int64_t rows_per_pos = std::max<int64_t>(1, G + (has_ref ? 1 : 0));  // G = 0: an empty result, no 1/0
  const int64_t pb_auto = std::max<int64_t>(1, kTileElements / (std::min(chunk, V) * rows_per_pos));
  const int64_t block = row_block > 0 ? row_block : pb_auto;

  const auto opts = h.options();
  VocabProjection out{at::empty({G, P, k}, opts),       at::empty({G, P, k}, opts.dtype(at::kLong)),
                      at::empty({G, P}, opts),          at::empty({G, P}, opts),
                      at::zeros({G, P}, opts),          at::empty({G, P, T}, opts),
                      at::empty({G, P, T}, opts.dtype(at::kLong))};

  AT_DISPATCH_FLOATING_TYPES(compute, "vocab_projection", [&] {
    for (int64_t p0 = 0; p0 < P; p0 += block) {
      const int64_t pb = std::min(block, P - p0);
      const int64_t n_rows = G * pb;
      at::Tensor rows = h.narrow(1, p0, pb).reshape({n_rows, d});
      if (has_ref) rows = at::cat({rows, ref.narrow(0, p0, pb)}, 0);
      rows = rows.contiguous();
      const at::Tensor tb = tg.narrow(0, p0, pb);
      // Target logits for the ranks: [n_rows, T].
      at::Tensor tpre = at::empty({n_rows, T}, opts);
      if (T > 0) {
        at::Tensor wt = weight.index_select(0, tb.reshape({-1})).to(compute).reshape({pb, T, d});
        at::Tensor zt = at::einsum("gpd,ptd->gpt", {h.narrow(1, p0, pb), wt});
        if (bias.has_value()) zt = zt + bias->to(compute).index_select(0, tb.reshape({-1})).reshape({1, pb, T});
        if (softcap > 0.0) zt = at::tanh(zt / softcap) * softcap;
        tpre = zt.reshape({n_rows, T}).contiguous();
      }
      BlockState st;
      std::vector<std::vector<std::pair<scalar_t, int64_t>>> heaps(n_rows);
      for (auto& hp : heaps) hp.reserve(k);
      std::vector<int64_t> counts(n_rows * T, 0);
      std::vector<double> target_z(n_rows * T, 0.0);
      project_block<scalar_t>(rows, weight, bias, tb, G, pb, has_ref, k, softcap, chunk, st, heaps, tpre, counts,
                              target_z);
      const at::Tensor m = st.m.contiguous(), s = st.s.contiguous(), t = st.t.contiguous();
      const at::Tensor mf = st.mf.contiguous(), sf = st.sf.contiguous(), u = st.u.reshape({-1}).contiguous();
      const double *mp = m.data_ptr<double>(), *sp = s.data_ptr<double>(), *tp = t.data_ptr<double>();
      const double *mfp = mf.data_ptr<double>(), *sfp = sf.data_ptr<double>(), *up = u.data_ptr<double>();

      auto tl = out.topk_logprobs.accessor<scalar_t, 3>();
      auto ti = out.topk_ids.accessor<int64_t, 3>();
      auto lse = out.logsumexp.accessor<scalar_t, 2>();
      auto ent = out.entropy.accessor<scalar_t, 2>();
      auto kl = out.kl.accessor<scalar_t, 2>();
      auto tlp = out.target_logprobs.accessor<scalar_t, 3>();
      auto trk = out.target_ranks.accessor<int64_t, 3>();
      for (int64_t r = 0; r < n_rows; ++r) {
        const int64_t g = r / pb, p = p0 + r % pb;
        const int64_t i = r % pb;
        const double l = mp[r] + std::log(sp[r]);
        lse[g][p] = static_cast<scalar_t>(l);
        ent[g][p] = static_cast<scalar_t>(std::log(sp[r]) - tp[r] / sp[r]);
        if (has_ref) {
          const double lf = mfp[i] + std::log(sfp[i]);
          kl[g][p] = static_cast<scalar_t>(std::max(0.0, up[r] / sfp[i] - lf + l));
        }
        auto heap = heaps[r];
        std::sort_heap(heap.begin(), heap.end(), better<scalar_t>);  // best first
        for (int64_t j = 0; j < k; ++j) {
          tl[g][p][j] = static_cast<scalar_t>(static_cast<double>(heap[j].first) - l);
          ti[g][p][j] = heap[j].second;
        }
        for (int64_t t = 0; t < T; ++t) {
          tlp[g][p][t] = static_cast<scalar_t>(target_z[r * T + t] - l);
          trk[g][p][t] = counts[r * T + t];
        }
      }
    }
  });
  return out;
}

}  // namespace attnscope
