// The running top-k merge of neuron statistics up to its core, taking the CPU or the device-generic core, as in
// attention.h.
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <string>
#include <tuple>

#include "attnscope/checks.h"
#include "attnscope/topk_merge.h"

namespace attnscope {
namespace kernels {

template <auto Core>
std::tuple<at::Tensor, at::Tensor, at::Tensor> topk_merge(const at::Tensor& values, const at::Tensor& keys,
                                                          const at::Tensor& new_values, const at::Tensor& new_keys) {
  check_topk_merge(values, keys, new_values, new_keys);
  TopkMerge r = Core(values, keys, new_values, new_keys);
  return {r.values, r.keys, r.source};
}

}  // namespace kernels
}  // namespace attnscope
