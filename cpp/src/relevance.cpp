#include "attnscope/relevance.h"

namespace attnscope {

at::Tensor attention_grad_relevance(const at::Tensor& attn, const at::Tensor& grad) {
  TORCH_CHECK_VALUE(attn.dim() == 5, "attn must be [layer, batch, head, n, n], got a ", attn.dim(),
                    "-D tensor of shape ", attn.sizes());
  TORCH_CHECK_VALUE(grad.sizes() == attn.sizes(), "grad must have the shape of attn ", attn.sizes(), ", got ",
                    grad.sizes());
  TORCH_CHECK_VALUE(attn.size(3) == attn.size(4), "attn must be square over query and key (self-attention), got ",
                    attn.size(3), " queries and ", attn.size(4), " keys");
  TORCH_CHECK_TYPE(at::isFloatingType(attn.scalar_type()) && at::isFloatingType(grad.scalar_type()),
                   "attn and grad must be floating tensors, got ", attn.scalar_type(), " and ", grad.scalar_type());
  const auto dtype = attn.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const int64_t batch = attn.size(1), n = attn.size(3);
  at::Tensor relevance = at::eye(n, attn.options().dtype(dtype)).unsqueeze(0).repeat({batch, 1, 1});
  for (int64_t l = 0; l < attn.size(0); ++l) {
    at::Tensor a = attn.select(0, l).to(dtype), g = grad.select(0, l).to(dtype);
    at::Tensor abar = (a * g).clamp_min(0).mean(/*dim=*/1);  // [batch, n, n]
    relevance = relevance + at::bmm(abar, relevance);
  }
  return relevance;
}

}  // namespace attnscope
