// topk_merge on every non-CPU device, and as topk_merge_generic for tests. Core: cpp/src/generic/analysis.cpp.
#include "attnscope/generic/analysis.h"
#include "attnscope/checks.h"
#include "register.h"

namespace attnscope {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> topk_merge_kernel(const at::Tensor& values, const at::Tensor& keys,
                                                                 const at::Tensor& new_values,
                                                                 const at::Tensor& new_keys) {
  check_topk_merge(values, keys, new_values, new_keys);
  TopkMerge r = generic::topk_merge(values, keys, new_values, new_keys);
  return {r.values, r.keys, r.source};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(attnscope, m) {
  m.def("topk_merge_generic(Tensor values, Tensor keys, Tensor new_values, Tensor new_keys) "
        "-> (Tensor values, Tensor keys, Tensor source)");
}

ATTNSCOPE_REGISTER_GENERIC(topk_merge, topk_merge_kernel)

}  // namespace attnscope
