// Running top-k per unit (neuron) over a stream of activations: the merge step of neuron statistics.
//
// Each unit keeps its k largest values with an int64 key per value (the caller encodes (text, position) so that
// key order is (text, position) order). Ties in value go to the smaller key; empty slots (key -1, value -inf)
// rank last. Memory is O(units x k) whatever the length of the stream.
#pragma once

#include <ATen/ATen.h>

#include <tuple>

namespace attnscope {

struct TopkMerge {
  at::Tensor values;  // [units, k], best first
  at::Tensor keys;    // [units, k] int64, -1 = empty
  at::Tensor source;  // [units, k] int64: j < k = old slot j, k + r = row r of the new block, -1 = empty
};

// The argument checks of topk_merge (shapes, dtypes), shared by the CPU kernel and the device-generic path.
void check_topk_merge_args(const at::Tensor& values, const at::Tensor& keys, const at::Tensor& new_values,
                           const at::Tensor& new_keys);

// Merge the running lists (values, keys) [units, k] with a block of new activations new_values [rows, units]
// (row-major, as a layer's activations come) whose row r has key new_keys[r]. NaN values are skipped.
TopkMerge topk_merge(const at::Tensor& values, const at::Tensor& keys, const at::Tensor& new_values,
                     const at::Tensor& new_keys);

}  // namespace attnscope
