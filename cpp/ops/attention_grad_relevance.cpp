// attention_grad_relevance: schema (a fragment of the attnscope library) and CPU kernel.
// Core: cpp/src/relevance.cpp (attnscope/relevance.h). Wrapper: python/attnscope/ops/relevance.py.
#include <torch/library.h>

#include "attnscope/no_autograd.h"
#include "attnscope/relevance.h"
#include "kernels/attention.h"

namespace attnscope {

TORCH_LIBRARY_FRAGMENT(attnscope, m) { m.def("attention_grad_relevance(Tensor attn, Tensor grad) -> Tensor"); }

TORCH_LIBRARY_IMPL(attnscope, CPU, m) { m.impl("attention_grad_relevance", &kernels::attention_grad_relevance); }

TORCH_LIBRARY_IMPL(attnscope, Autograd, m) { m.impl("attention_grad_relevance", refuse_autograd()); }

}  // namespace attnscope
