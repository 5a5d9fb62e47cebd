// Schema and CPU kernel of topk_merge: the running top-k merge of neuron statistics (attnscope/topk_merge.h).
#include <torch/library.h>

#include "attnscope/topk_merge.h"
#include "attnscope/checks.h"
#include "attnscope/no_autograd.h"

namespace attnscope {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> topk_merge_cpu(const at::Tensor& values, const at::Tensor& keys,
                                                              const at::Tensor& new_values,
                                                              const at::Tensor& new_keys) {
  check_topk_merge(values, keys, new_values, new_keys);
  TopkMerge r = topk_merge(values, keys, new_values, new_keys);
  return {r.values, r.keys, r.source};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(attnscope, m) {
  m.def("topk_merge(Tensor values, Tensor keys, Tensor new_values, Tensor new_keys) "
        "-> (Tensor values, Tensor keys, Tensor source)");
}

TORCH_LIBRARY_IMPL(attnscope, CPU, m) { m.impl("topk_merge", &topk_merge_cpu); }

TORCH_LIBRARY_IMPL(attnscope, Autograd, m) { m.impl("topk_merge", refuse_autograd()); }

}  // namespace attnscope
