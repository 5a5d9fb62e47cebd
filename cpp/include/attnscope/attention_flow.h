// Attention flow (Abnar & Zuidema, 2020): the max-flow through the layered graph of the rollout matrices Â.
#pragma once

#include <ATen/ATen.h>

#include "attnscope/rollout.h"

namespace attnscope {

// The max-flow from each output position in `rows` (all when absent) at the top of the layered graph of Â
// (see rollout.h for Â and maxflow.h for the graph) to each input token at the bottom.
// attn is [layer, batch, head, query, key]; the result is [batch, rows, key], float64. normalize divides each
// output row by its sum, as the paper's code does (a row summing to 0 stays 0).
at::Tensor attention_flow(const at::Tensor& attn, bool residual, HeadReduce reduce, at::OptionalIntArrayRef rows,
                          bool normalize);

}  // namespace attnscope
