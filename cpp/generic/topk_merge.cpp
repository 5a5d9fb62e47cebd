// topk_merge on every non-CPU device, and as topk_merge_generic for tests. Core: cpp/src/generic/analysis.cpp.
#include "attnscope/generic/analysis.h"
#include "register.h"
#include "../ops/kernels/neurons.h"

namespace attnscope {

TORCH_LIBRARY_FRAGMENT(attnscope, m) {
  m.def("topk_merge_generic(Tensor values, Tensor keys, Tensor new_values, Tensor new_keys) "
        "-> (Tensor values, Tensor keys, Tensor source)");
}

ATTNSCOPE_REGISTER_GENERIC(topk_merge, kernels::topk_merge<&generic::topk_merge>)

}  // namespace attnscope
