// Schemas of the analysis ops (rollout, attention flow). A fragment, so registration.cpp stays untouched.
// head_reduce: 0 = mean over heads, 1 = max over heads.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(attnscope, m) {
  m.def("rollout(Tensor attn, bool residual, int head_reduce, int[]? rows) -> Tensor");
  m.def("attention_flow(Tensor attn, bool residual, int head_reduce, int[]? rows, bool normalize) -> Tensor");
}
