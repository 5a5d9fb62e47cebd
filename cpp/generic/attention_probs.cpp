// attention_probs and its backward on every non-CPU device, and as attention_probs_generic(_backward) for tests.
// Core: cpp/src/generic/attention.cpp. Autograd of the _generic op: python/attnscope/ops/attention.py.
#include "attnscope/generic/attention.h"
#include "attnscope/checks.h"
#include "register.h"

namespace attnscope {
namespace {

at::Tensor attention_probs_kernel(const at::Tensor& q, const at::Tensor& k, const std::optional<at::Tensor>& mask,
                                  double scale, bool is_causal, int64_t window, double softcap,
                                  const std::optional<at::Tensor>& sinks, int64_t query_chunk) {
  const AttentionSpec spec{scale, is_causal, window, softcap, query_chunk};
  check_attention_probs(q, k, mask, spec, sinks);
  return generic::attention_probs(q, k, mask, spec, sinks);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> attention_probs_backward_kernel(
    const at::Tensor& grad, const at::Tensor& probs, const at::Tensor& q, const at::Tensor& k, double scale,
    double softcap, const std::optional<at::Tensor>& sinks, int64_t query_chunk) {
  const AttentionSpec spec{scale, /*is_causal=*/false, /*window=*/0, softcap, query_chunk};
  check_attention_probs_backward(grad, probs, q, k, spec, sinks);
  return generic::attention_probs_backward(grad, probs, q, k, spec, sinks);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(attnscope, m) {
  m.def(
      "attention_probs_generic(Tensor q, Tensor k, Tensor? mask, float scale, bool is_causal, int window, "
      "float softcap, Tensor? sinks, int query_chunk) -> Tensor");
  m.def(
      "attention_probs_backward_generic(Tensor grad, Tensor probs, Tensor q, Tensor k, float scale, float softcap, "
      "Tensor? sinks, int query_chunk) -> (Tensor, Tensor, Tensor)");
}

ATTNSCOPE_REGISTER_GENERIC(attention_probs, attention_probs_kernel)
ATTNSCOPE_REGISTER_GENERIC(attention_probs_backward, attention_probs_backward_kernel)

}  // namespace attnscope
