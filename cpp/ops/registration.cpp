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
  m.def(
      "attention_head_stats(Tensor q, Tensor k, Tensor? mask, float scale, bool is_causal, int window, "
      "float softcap, Tensor? sinks, int query_chunk, Tensor? input_ids, Tensor? valid, int induction_period) "
      "-> (Tensor sums, Tensor counts)");
  // analysis
  m.def("rollout(Tensor attn, bool residual, int head_reduce, int[]? rows) -> Tensor");
  m.def("attention_flow(Tensor attn, bool residual, int head_reduce, int[]? rows, bool normalize) -> Tensor");
  // attribution
  m.def("attention_grad_relevance(Tensor attn, Tensor grad) -> Tensor");
  m.def("quadrature_rule(str method, int n) -> (Tensor, Tensor)");
  m.def("composite_gauss_legendre(Tensor bounds, int order) -> (Tensor, Tensor)");
  m.def("refine_segments(Tensor bounds, Tensor errors, float tolerance, int max_new) -> Tensor");
}
