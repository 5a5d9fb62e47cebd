// Schema and CPU kernel of vocab_projection (the streaming logit-lens readout; core in cpp/src).
#include <torch/library.h>

#include "attnscope/vocab_projection.h"
#include "attnscope/checks.h"
#include "attnscope/no_autograd.h"

namespace attnscope {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> vocab_projection_cpu(
    const at::Tensor& hidden, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
    const std::optional<at::Tensor>& reference, const at::Tensor& targets, int64_t k, double softcap,
    int64_t vocab_chunk, int64_t row_block) {
  check_vocab_projection(hidden, weight, bias, reference, targets, k, softcap, vocab_chunk, row_block);
  VocabProjection r =
      vocab_projection(hidden, weight, bias, reference, targets, k, softcap, vocab_chunk, row_block);
  return {r.topk_logprobs, r.topk_ids, r.logsumexp, r.entropy, r.kl, r.target_logprobs, r.target_ranks};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(attnscope, m) {
  m.def(
      "vocab_projection(Tensor hidden, Tensor weight, Tensor? bias, Tensor? reference, Tensor targets, int k, "
      "float softcap, int vocab_chunk, int row_block) -> (Tensor topk_logprobs, Tensor topk_ids, "
      "Tensor logsumexp, Tensor entropy, Tensor kl, Tensor target_logprobs, Tensor target_ranks)");
}

TORCH_LIBRARY_IMPL(attnscope, CPU, m) { m.impl("vocab_projection", &vocab_projection_cpu); }

TORCH_LIBRARY_IMPL(attnscope, Autograd, m) { m.impl("vocab_projection", refuse_autograd()); }

}  // namespace attnscope
