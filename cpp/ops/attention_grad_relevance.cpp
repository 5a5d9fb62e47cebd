// attention_grad_relevance: schema (a fragment of the attnscope library) and CPU kernel.
// Core: cpp/src/relevance.cpp (attnscope/relevance.h). Wrapper: python/attnscope/ops/relevance.py.
#include <torch/library.h>

#include "attnscope/checks.h"
#include "attnscope/no_autograd.h"
#include "attnscope/relevance.h"

namespace attnscope {
namespace {

at::Tensor attention_grad_relevance_cpu(const at::Tensor& attn, const at::Tensor& grad) {
  check_attention_grad_relevance(attn, grad);
  return attention_grad_relevance(attn, grad);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(attnscope, m) { m.def("attention_grad_relevance(Tensor attn, Tensor grad) -> Tensor"); }

TORCH_LIBRARY_IMPL(attnscope, CPU, m) { m.impl("attention_grad_relevance", &attention_grad_relevance_cpu); }

TORCH_LIBRARY_IMPL(attnscope, Autograd, m) { m.impl("attention_grad_relevance", refuse_autograd()); }

}  // namespace attnscope
