"""The door to the C++ op ``vocab_projection`` (the streaming logit-lens readout): typed wrapper and fake kernel.

The core is ``cpp/src/vocab_projection.cpp``; the schema is in ``cpp/ops/vocab_projection.cpp``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ._extension import _C  # noqa: F401  (registers torch.ops.attnscope)

__all__ = ["VocabProjection", "vocab_projection"]


class VocabProjection(NamedTuple):
    """What :func:`vocab_projection` returns; ``G`` groups (layers) of ``P`` rows (positions), ``T`` targets."""

    topk_logprobs: Tensor  # [G, P, k] log-probabilities of the k most likely tokens, descending
    topk_ids: Tensor  # [G, P, k] int64; ties: the smaller id first
    logsumexp: Tensor  # [G, P]
    entropy: Tensor  # [G, P] nats
    kl: Tensor  # [G, P] KL(reference || row) in nats; 0 without a reference
    target_logprobs: Tensor  # [G, P, T]
    target_ranks: Tensor  # [G, P, T] int64, 0 = the most likely token


def vocab_projection(
    hidden: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    *,
    reference: Tensor | None = None,
    targets: Tensor | None = None,
    k: int = 5,
    softcap: float = 0.0,
    vocab_chunk: int = 0,
    row_block: int = 0,
) -> VocabProjection:
    """Streamed ``softmax(softcap(hidden @ weight.T + bias))`` statistics, one vocabulary chunk at a time.

    Args:
        hidden: ``[G, P, d]`` rows already through the model's final norm (``[P, d]`` is taken as ``G = 1``).
        weight: ``[V, d]`` unembedding; ``bias``: ``[V]`` or None.
        reference: ``[P, d]`` rows whose distributions the KL divergence ``KL(ref || row)`` is taken from.
        targets: ``[P, T]`` int64 token ids whose log-probability and rank are reported (None: ``T = 0``).
        k: how many top tokens (1..V). softcap: ``c * tanh(z / c)`` on the logits when ``c > 0``.
        vocab_chunk: vocabulary entries per tile (0 = 8192); row_block: rows per block (0 = automatic).
            The results do not depend on ``vocab_chunk``; memory beyond the inputs is one tile.

    Not differentiable. float64 inputs compute in float64, all others in float32.
    """
    squeeze = hidden.dim() == 2
    if squeeze:
        hidden = hidden.unsqueeze(0)
    if targets is None:
        targets = torch.zeros((hidden.shape[1], 0), dtype=torch.long, device=hidden.device)
    out = torch.ops.attnscope.vocab_projection(
        hidden, weight, bias, reference, targets, int(k), float(softcap), int(vocab_chunk), int(row_block)
    )
    return VocabProjection(*(t.squeeze(0) for t in out) if squeeze else out)


@torch.library.register_fake("attnscope::vocab_projection")
def _vocab_projection_fake(hidden, weight, bias, reference, targets, k, softcap, vocab_chunk, row_block):
    g, p = hidden.shape[0], hidden.shape[1]
    t = targets.shape[1]
    dtype = torch.float64 if hidden.dtype == torch.float64 else torch.float32
    f = dict(dtype=dtype, device=hidden.device)
    i = dict(dtype=torch.long, device=hidden.device)
    return (hidden.new_empty((g, p, k), **f), hidden.new_empty((g, p, k), **i), hidden.new_empty((g, p), **f),
            hidden.new_empty((g, p), **f), hidden.new_empty((g, p), **f), hidden.new_empty((g, p, t), **f),
            hidden.new_empty((g, p, t), **i))
