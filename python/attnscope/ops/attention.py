"""Attention ops: probabilities (with autograd), probabilities reduced in the chunk loop, per-head statistics.

Every op here takes ``(q, k)`` and the shared attention arguments of :class:`~attnscope.ops.spec.AttentionSpec`
(schemas in ``cpp/ops/attention_probs.cpp``, ``attention_probs_reduced.cpp``, ``attention_head_stats.cpp``).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Sequence

import torch
from torch import Tensor

from .devices import check_one_device
from .spec import AttentionSpec, attention_op, probs_dtype

__all__ = [
    "HEAD_STAT_NAMES", "HeadStatSums", "ReducedAttention", "attention_head_stats", "attention_probs",
    "attention_probs_reduced",
]


# --- attention_probs and its autograd formula --------------------------------------------------------------------
@attention_op
def attention_probs(q: Tensor, k: Tensor, spec: AttentionSpec) -> Tensor:
    """Attention probabilities ``softmax(scale * q @ k^T)``, computed in query chunks.

    Args:
        q: ``[batch, q_heads, q_len, head_dim]``.
        k: ``[batch, kv_heads, k_len, head_dim]``; ``q_heads`` must be a multiple of ``kv_heads``
            (grouped-query attention maps q head ``h`` to kv head ``h // (q_heads // kv_heads)``, no copies).
        spec: the attention arguments (:class:`AttentionSpec`), given as ``spec=`` or as the keywords ``mask``,
            ``scale``, ``is_causal``, ``window``, ``softcap``, ``sinks``, ``query_chunk`` (see its fields).

    Returns:
        ``[batch, q_heads, q_len, k_len]`` probabilities, float32 (float64 for float64 input). Rows with no
        visible key are zeros.

    Differentiable in ``q``, ``k``, ``sinks`` and an additive float ``mask``. Validated at the door (every error
    names the argument and what it got): one device for all tensors, ``q_heads``, ``kv_heads``, ``head_dim`` >= 1
    (``batch``, ``q_len``, ``k_len`` may be 0), finite ``q``, ``k`` and ``sinks`` and a mask free of NaN and
    ``+inf`` (``-inf`` masks a key): a NaN would otherwise turn a row into zeros that read as masked.
    """
    return torch.ops.attnscope.attention_probs(q, k, *spec.op_args(q))


@torch.library.register_fake("attnscope::attention_probs_generic")
@torch.library.register_fake("attnscope::attention_probs")
def _attention_probs_fake(q, k, *spec_args):
    spec, _ = AttentionSpec.from_op_args(spec_args)
    check_one_device("attention_probs", q=q, k=k, mask=spec.mask, sinks=spec.sinks)
    torch._check(q.dim() == 4, lambda: f"q must be [batch, q_heads, q_len, head_dim], got {q.dim()}-D")
    torch._check(k.dim() == 4, lambda: f"k must be [batch, kv_heads, k_len, head_dim], got {k.dim()}-D")
    return q.new_empty((q.shape[0], q.shape[1], q.shape[2], k.shape[2]), dtype=probs_dtype(q.dtype))


@torch.library.register_fake("attnscope::attention_probs_backward_generic")
@torch.library.register_fake("attnscope::attention_probs_backward")
def _attention_probs_backward_fake(grad, probs, q, k, scale, softcap, sinks, query_chunk):
    check_one_device("attention_probs_backward", grad=grad, probs=probs, q=q, k=k, sinks=sinks)
    dtype = probs_dtype(q.dtype)
    dsinks = q.new_empty((q.shape[1],) if sinks is not None else (0,), dtype=dtype)
    return q.new_empty(q.shape, dtype=dtype), k.new_empty(k.shape, dtype=dtype), dsinks


def _setup_context(ctx, inputs, output):
    q, k, *spec_args = inputs
    spec, _ = AttentionSpec.from_op_args(tuple(spec_args))
    ctx.save_for_backward(q, k, spec.sinks, output)
    ctx.spec = dataclasses.replace(spec, mask=None, sinks=None)  # tensors travel through save_for_backward
    ctx.has_sinks = spec.sinks is not None
    ctx.mask_meta = None if spec.mask is None else (spec.mask.shape, spec.mask.dtype)


def _mask_gradient(probs: Tensor, grad: Tensor, shape: torch.Size, dtype: torch.dtype) -> Tensor:
    """dL/dmask of an additive mask: the gradient of the (soft-capped) logits it is added to, softmax's backward
    ``p * (g - sum_j g_j p_j)`` (a sink's output gradient is 0, so the sum runs over the keys), summed over the
    dimensions the mask broadcasts. Masked and hidden keys have ``p = 0`` and get 0, as in torch's softmax."""
    dlogits = probs * (grad - (grad * probs).sum(-1, keepdim=True))
    return dlogits.sum_to_size(shape).to(dtype)


def _backward_with(backward_op):
    """The backward formula of an attention_probs op whose q/k/sinks gradients come from ``backward_op`` (an additive
    float mask's gradient is softmax's backward, :func:`_mask_gradient`)."""

    def backward(ctx, grad):
        q, k, sinks, probs = ctx.saved_tensors
        spec = ctx.spec
        dq, dk, dsinks = backward_op(
            grad, probs, q, k, spec.scale, spec.softcap, sinks if ctx.has_sinks else None, spec.query_chunk
        )
        dsinks_out = dsinks.to(sinks.dtype) if ctx.has_sinks else None
        dmask = None
        if ctx.mask_meta is not None and ctx.needs_input_grad[2]:
            dmask = _mask_gradient(probs, grad.to(probs.dtype), *ctx.mask_meta)
        return dq.to(q.dtype), dk.to(k.dtype), *AttentionSpec.gradients(mask=dmask, sinks=dsinks_out)

    return backward

    return backward


torch.library.register_autograd(
    "attnscope::attention_probs", _backward_with(torch.ops.attnscope.attention_probs_backward),
    setup_context=_setup_context,
)
# The device-generic path forced on any device (cpp/generic): the same formula with the generic backward.
torch.library.register_autograd(
    "attnscope::attention_probs_generic", _backward_with(torch.ops.attnscope.attention_probs_backward_generic),
    setup_context=_setup_context,
)


# --- attention_probs_reduced: head selection, reductions, top-k and entropy inside the chunk loop --------------------
class ReducedAttention(NamedTuple):
    """What :func:`attention_probs_reduced` returns; tensors not asked for are empty."""

    weights: Tensor  # [batch, heads_sel, q_len, k_len], or [batch, q_len, k_len] when reduced over heads
    topk_values: Tensor  # [batch, heads_sel, q_len, topk]
    topk_indices: Tensor  # [batch, heads_sel, q_len, topk], int64 key indices
    entropy: Tensor  # [batch, heads_sel, q_len], nats
    output: Tensor  # [batch, q_len, q_heads, v_dim]: P·V of every head when ``value`` was given


@attention_op
def attention_probs_reduced(
    q: Tensor,
    k: Tensor,
    spec: AttentionSpec,
    heads: Sequence[int] | None = None,
    reduce: str | None = None,
    keep_weights: bool = True,
    topk: int = 0,
    entropy: bool = False,
    value: Tensor | None = None,
) -> ReducedAttention:
    """Attention probabilities reduced inside the chunk loop (same inputs as :func:`attention_probs`).

    ``heads`` selects q heads; ``reduce`` in {None, "mean", "max", "sum"} combines the selected heads (dropping the
    head axis); ``topk`` keeps the k largest probabilities per row and head; ``entropy`` adds each row's entropy.
    The full ``[batch, heads, q_len, k_len]`` tensor is never built, and temporary memory does not grow with the
    number of heads. ``value`` ``[batch, kv_heads, k_len, v_dim]`` adds ``output``, the attention output ``P·V`` of
    every q head (selected or not) from the same probabilities, ``[batch, q_len, q_heads, v_dim]`` as attention
    functions return it, in the probabilities' dtype: the layer's output without computing ``q @ k^T`` twice.
    Not differentiable: inputs that require grad raise a RuntimeError while grad mode is on (detach them or call
    under ``torch.no_grad()``). Inputs are validated as for :func:`attention_probs`.
    """
    return ReducedAttention(
        *torch.ops.attnscope.attention_probs_reduced(
            q, k, *spec.op_args(q), None if heads is None else [int(h) for h in heads], reduce or "none",
            bool(keep_weights), int(topk), bool(entropy), value,
        )
    )


@torch.library.register_fake("attnscope::attention_probs_reduced_generic")
@torch.library.register_fake("attnscope::attention_probs_reduced")
def _attention_probs_reduced_fake(q, k, *args):
    spec, (heads, reduce, keep_weights, topk, entropy, *rest) = AttentionSpec.from_op_args(args)
    value = rest[0] if rest else None
    check_one_device("attention_probs_reduced", q=q, k=k, mask=spec.mask, sinks=spec.sinks, value=value)
    dtype = probs_dtype(q.dtype)
    batch, q_len, k_len = q.shape[0], q.shape[2], k.shape[2]
    n_sel = q.shape[1] if heads is None or len(heads) == 0 else len(heads)
    if not keep_weights:
        weights = q.new_empty((0,), dtype=dtype)
    elif reduce == "none":
        weights = q.new_empty((batch, n_sel, q_len, k_len), dtype=dtype)
    else:
        weights = q.new_empty((batch, q_len, k_len), dtype=dtype)
    top_shape = (batch, n_sel, q_len, topk) if topk > 0 else (0,)
    return (
        weights,
        q.new_empty(top_shape, dtype=dtype),
        q.new_empty(top_shape, dtype=torch.long),
        q.new_empty((batch, n_sel, q_len) if entropy else (0,), dtype=dtype),
        q.new_empty((batch, q_len, q.shape[1], value.shape[-1]) if value is not None else (0,), dtype=dtype),
    )


# --- attention_head_stats: per-head statistics inside the chunk loop ------------------------------------------------
HEAD_STAT_NAMES = ("prev_token", "induction", "duplicate_token", "entropy", "first_token", "distance")


class HeadStatSums(NamedTuple):
    """What :func:`attention_head_stats` returns: per-example sums and counted rows; the mean is ``sums / counts``."""

    sums: Tensor  # [batch, q_heads, 6] float64, columns in HEAD_STAT_NAMES order
    counts: Tensor  # [batch, 6] int64, counted query rows per statistic (the same for every head)


@attention_op
def attention_head_stats(
    q: Tensor,
    k: Tensor,
    spec: AttentionSpec,
    input_ids: Tensor | None = None,
    valid: Tensor | None = None,
    induction_period: int = 0,
) -> HeadStatSums:
    """Per-head attention statistics computed from the probabilities inside the chunk loop (never stored).

    Same attention inputs as :func:`attention_probs`. ``input_ids`` ``[batch, k_len]`` enables the duplicate-token
    and induction statistics; ``valid`` ``[batch, k_len]`` (bool or 0/1) marks real tokens, so padding rows and keys
    are not counted; ``induction_period`` is the repeated segment's length ``P >= 2`` (0 = no induction statistic).
    With query row ``i`` at absolute position ``i + k_len - q_len`` and ``p`` its probabilities, summed over the
    valid rows that each statistic counts:

    - ``prev_token``: ``p[i-1]``; rows whose position ``i-1`` is valid.
    - ``induction``: ``p[i-P+1]``; rows with ``i-P`` and ``i-P+1`` valid and ``input_ids[i] == input_ids[i-P]``.
    - ``duplicate_token``: ``sum p[j]`` over valid ``j < i`` with ``input_ids[j] == input_ids[i]``; rows with such a j.
    - ``entropy``: ``-sum p[j] log p[j]`` (nats); every valid row.
    - ``first_token``: ``p[f]`` with ``f`` the first valid position; every valid row.
    - ``distance``: ``sum p[j] |i - j|``; every valid row.

    Not differentiable (inputs that require grad raise while grad mode is on); inputs are validated as for
    :func:`attention_probs`.
    """
    return HeadStatSums(
        *torch.ops.attnscope.attention_head_stats(q, k, *spec.op_args(q), input_ids, valid, int(induction_period))
    )


@torch.library.register_fake("attnscope::attention_head_stats_generic")
@torch.library.register_fake("attnscope::attention_head_stats")
def _attention_head_stats_fake(q, k, *args):
    spec, (input_ids, valid, _) = AttentionSpec.from_op_args(args)
    check_one_device("attention_head_stats", q=q, k=k, mask=spec.mask, sinks=spec.sinks, input_ids=input_ids,
                     valid=valid)
    n = len(HEAD_STAT_NAMES)
    return q.new_empty((q.shape[0], q.shape[1], n), dtype=torch.float64), q.new_empty((q.shape[0], n), dtype=torch.long)
