// Rollout and flow up to their cores (head reduction codes unpacked), one template per op taking the CPU or the
// device-generic core, as in attention.h.
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <string>
#include <tuple>

#include "attnscope/checks.h"
#include "attnscope/rollout.h"

namespace attnscope {
namespace kernels {

template <auto Core>
at::Tensor rollout(const at::Tensor& attn, bool residual, int64_t head_reduce, at::OptionalIntArrayRef rows) {
  check_rollout(attn, head_reduce, rows);
  return Core(attn, residual, head_reduce_from_int(head_reduce), rows);
}

template <auto Core>
at::Tensor attention_flow(const at::Tensor& attn, bool residual, int64_t head_reduce, at::OptionalIntArrayRef rows,
                          bool normalize) {
  check_attention_flow(attn, head_reduce, rows);
  return Core(attn, residual, head_reduce_from_int(head_reduce), rows, normalize);
}

}  // namespace kernels
}  // namespace attnscope
