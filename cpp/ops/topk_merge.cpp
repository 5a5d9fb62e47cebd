// Schema and CPU kernel of topk_merge: the running top-k merge of neuron statistics (attnscope/topk_merge.h).
#include <torch/library.h>

#include "attnscope/topk_merge.h"
#include "attnscope/no_autograd.h"
#include "kernels/neurons.h"

namespace attnscope {

TORCH_LIBRARY_FRAGMENT(attnscope, m) {
  m.def("topk_merge(Tensor values, Tensor keys, Tensor new_values, Tensor new_keys) "
        "-> (Tensor values, Tensor keys, Tensor source)");
}

TORCH_LIBRARY_IMPL(attnscope, CPU, m) { m.impl("topk_merge", &kernels::topk_merge<&topk_merge>); }

TORCH_LIBRARY_IMPL(attnscope, Autograd, m) { m.impl("topk_merge", refuse_autograd()); }

}  // namespace attnscope
