// The schemas of every attnscope op, defined once. Kernels register per backend in their own files.
#include <torch/library.h>

TORCH_LIBRARY(attnscope, m) {
  m.def(
      "attention_probs(Tensor q, Tensor k, Tensor? mask, float scale, bool is_causal, int window, float softcap, "
      "Tensor? sinks, int query_chunk) -> Tensor");
  m.def(
      "attention_probs_backward(Tensor grad, Tensor probs, Tensor q, Tensor k, float scale, float softcap, "
      "Tensor? sinks, int query_chunk) -> (Tensor, Tensor, Tensor)");
  m.def(
      "attention_probs_reduced(Tensor q, Tensor k, Tensor? mask, float scale, bool is_causal, int window, "
      "float softcap, Tensor? sinks, int query_chunk, int[]? heads, str reduce, bool keep_weights, int topk, "
      "bool entropy) -> (Tensor weights, Tensor topk_values, Tensor topk_indices, Tensor entropy)");
  m.def("attention_grad_relevance(Tensor attn, Tensor grad) -> Tensor");
}
