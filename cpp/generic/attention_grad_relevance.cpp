// attention_grad_relevance on every non-CPU device, and as attention_grad_relevance_generic for tests. Its core
// (cpp/src/relevance.cpp) is already written in ATen operations on the input's device: the same function serves.
#include "attnscope/relevance.h"
#include "register.h"
#include "../ops/kernels/attention.h"

namespace attnscope {

TORCH_LIBRARY_FRAGMENT(attnscope, m) { m.def("attention_grad_relevance_generic(Tensor attn, Tensor grad) -> Tensor"); }

ATTNSCOPE_REGISTER_GENERIC(attention_grad_relevance, kernels::attention_grad_relevance)

}  // namespace attnscope
