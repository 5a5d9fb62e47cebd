// attention_flow on every non-CPU device (max-flow on a CPU copy, result on the input's device), and as
// attention_flow_generic for tests. Core: cpp/src/generic/analysis.cpp.
#include "attnscope/generic/analysis.h"
#include "register.h"
#include "../ops/kernels/analysis.h"

namespace attnscope {

TORCH_LIBRARY_FRAGMENT(attnscope, m) {
  m.def("attention_flow_generic(Tensor attn, bool residual, int head_reduce, int[]? rows, bool normalize) -> Tensor");
}

ATTNSCOPE_REGISTER_GENERIC(attention_flow, kernels::attention_flow<&generic::attention_flow>)

}  // namespace attnscope
