// attention_probs and its backward: schemas (a fragment of the attnscope library) and CPU kernels.
// Core: cpp/src/attention_probs.cpp, prob_rows.h, row_kernels.cpp (attnscope/attention_probs.h). Wrapper and autograd:
// python/attnscope/ops/attention.py.
#include <torch/library.h>

#include "attnscope/attention_probs.h"
#include "attnscope/checks.h"
#include "attnscope/no_autograd.h"

namespace attnscope {
namespace {

at::Tensor attention_probs_cpu(const at::Tensor& q, const at::Tensor& k, const std::optional<at::Tensor>& mask,
                               double scale, bool is_causal, int64_t window, double softcap,
                               const std::optional<at::Tensor>& sinks, int64_t query_chunk) {
  const AttentionSpec spec{scale, is_causal, window, softcap, query_chunk};
  check_attention_probs(q, k, mask, spec, sinks);
  return attention_probs(q, k, mask, spec, sinks);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> attention_probs_backward_cpu(
    const at::Tensor& grad, const at::Tensor& probs, const at::Tensor& q, const at::Tensor& k, double scale,
    double softcap, const std::optional<at::Tensor>& sinks, int64_t query_chunk) {
  const AttentionSpec spec{scale, /*is_causal=*/false, /*window=*/0, softcap, query_chunk};
  check_attention_probs_backward(grad, probs, q, k, spec, sinks);
  return attention_probs_backward(grad, probs, q, k, spec, sinks);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(attnscope, m) {
  m.def(
      "attention_probs(Tensor q, Tensor k, Tensor? mask, float scale, bool is_causal, int window, float softcap, "
      "Tensor? sinks, int query_chunk) -> Tensor");
  m.def(
      "attention_probs_backward(Tensor grad, Tensor probs, Tensor q, Tensor k, float scale, float softcap, "
      "Tensor? sinks, int query_chunk) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(attnscope, CPU, m) {
  m.impl("attention_probs", &attention_probs_cpu);
  m.impl("attention_probs_backward", &attention_probs_backward_cpu);
}

// The backward has no backward of its own (no double backward); attention_probs' autograd is in Python.
TORCH_LIBRARY_IMPL(attnscope, Autograd, m) { m.impl("attention_probs_backward", refuse_autograd()); }

}  // namespace attnscope
