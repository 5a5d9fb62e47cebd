#include "attnscope/attention_flow.h"

#include "attnscope/maxflow.h"

namespace attnscope {

at::Tensor attention_flow(const at::Tensor& attn, bool residual, HeadReduce reduce, at::OptionalIntArrayRef rows,
                          bool normalize) {
  return layered_max_flow(augmented_attention(attn, residual, reduce, at::kDouble), rows, normalize);
}

}  // namespace attnscope
