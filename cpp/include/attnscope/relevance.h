// Relevance propagation through self-attention layers with attention gradients (Chefer et al., 2021).
#pragma once

#include <ATen/ATen.h>

namespace attnscope {

// attn, grad: [layer, batch, head, n, n] (the attention probabilities and dF/dA of each layer, first layer first).
// Per layer Abar = mean_h max(0, grad * attn); R starts as the identity and becomes R + Abar R.
// Returns R: [batch, n, n]; row i is the relevance of every input token for position i.
at::Tensor attention_grad_relevance(const at::Tensor& attn, const at::Tensor& grad);

}  // namespace attnscope
