// Device-generic analysis and bookkeeping ops (same semantics as rollout.h, attention_flow.h, topk_merge.h and
// quadrature.h), for tensors on any device.
//
// rollout and topk_merge run in ATen operations on the input's device. attention_flow (max-flow: a sequential graph
// algorithm), composite_gauss_legendre and refine_segments (a few dozen scalars) are inherently CPU work: their
// generic path copies the inputs to the CPU explicitly, runs the CPU core and returns the result on the input's
// device. Their results are float64, which MPS cannot hold: on MPS these three raise torch's own dtype error.
#pragma once

#include <ATen/ATen.h>

#include <utility>

#include "attnscope/rollout.h"
#include "attnscope/topk_merge.h"

namespace attnscope {
namespace generic {

at::Tensor rollout(const at::Tensor& attn, bool residual, HeadReduce reduce, at::OptionalIntArrayRef rows);

at::Tensor attention_flow(const at::Tensor& attn, bool residual, HeadReduce reduce, at::OptionalIntArrayRef rows,
                          bool normalize);

TopkMerge topk_merge(const at::Tensor& values, const at::Tensor& keys, const at::Tensor& new_values,
                     const at::Tensor& new_keys);

std::pair<at::Tensor, at::Tensor> composite_gauss_legendre(const at::Tensor& bounds, int64_t order);

at::Tensor refine_segments(const at::Tensor& bounds, const at::Tensor& errors, double tolerance, int64_t max_new);

}  // namespace generic
}  // namespace attnscope
