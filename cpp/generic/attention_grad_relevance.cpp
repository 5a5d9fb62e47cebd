// attention_grad_relevance on every non-CPU device, and as attention_grad_relevance_generic for tests. Its core
// (cpp/src/relevance.cpp) is already written in ATen operations on the input's device: the same function serves.
#include "attnscope/checks.h"
#include "attnscope/relevance.h"
#include "register.h"

namespace attnscope {
namespace {

at::Tensor attention_grad_relevance_kernel(const at::Tensor& attn, const at::Tensor& grad) {
  check_attention_grad_relevance(attn, grad);
  return attention_grad_relevance(attn, grad);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(attnscope, m) { m.def("attention_grad_relevance_generic(Tensor attn, Tensor grad) -> Tensor"); }

ATTNSCOPE_REGISTER_GENERIC(attention_grad_relevance, attention_grad_relevance_kernel)

}  // namespace attnscope
