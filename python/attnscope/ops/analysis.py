"""Analysis ops on captured attention: rollout and attention flow (``cpp/ops/rollout.cpp``,
``cpp/ops/attention_flow.cpp``; cores ``cpp/src/rollout.cpp``, ``maxflow.cpp``, ``attention_flow.cpp``)."""

from __future__ import annotations

import torch
from torch import Tensor

from .spec import probs_dtype

__all__ = ["HEAD_REDUCE_CODES", "attention_flow", "rollout"]

#: The schema's ``head_reduce`` codes.
HEAD_REDUCE_CODES: dict[str, int] = {"mean": 0, "max": 1}


def _head_reduce_code(head_reduce: str) -> int:
    if head_reduce not in HEAD_REDUCE_CODES:
        raise ValueError(f"head_reduce must be one of {sorted(HEAD_REDUCE_CODES)}, got {head_reduce!r}")
    return HEAD_REDUCE_CODES[head_reduce]


def rollout(attn: Tensor, *, residual: bool = True, head_reduce: str = "mean", rows: list[int] | None = None) -> Tensor:
    """Attention rollout ``Â_{L-1} ··· Â_0`` with ``Â_l = rownorm(reduce_heads(A_l) + I)`` (``A_l`` as is without
    ``residual``).

    Args:
        attn: ``[layer, batch, head, query, key]`` with ``query == key``, non-negative and finite.
        residual: add the identity (the residual stream) and renormalise rows.
        head_reduce: ``"mean"`` or ``"max"`` over heads.
        rows: query positions ``0..query-1`` to compute (vector-matrix products); all when None.

    Returns:
        ``[batch, len(rows) or query, key]``, float64 for float64 input, else float32.
    """
    return torch.ops.attnscope.rollout(attn, bool(residual), _head_reduce_code(head_reduce), rows)


def attention_flow(
    attn: Tensor,
    *,
    residual: bool = True,
    head_reduce: str = "mean",
    rows: list[int] | None = None,
    normalize: bool = True,
) -> Tensor:
    """Attention flow: max-flow from each output position (top layer) to each input token (bottom layer) through
    the layered graph whose arcs ``(l + 1, i) -> (l, j)`` carry ``Â_l[i, j]`` (see :func:`rollout`).

    Args:
        attn: ``[layer, batch, head, query, key]`` with ``query == key``, non-negative and finite.
        residual, head_reduce: as for :func:`rollout`.
        rows: output positions ``0..query-1`` to solve for; all when None.
        normalize: divide each output row by its sum (a row summing to 0 stays 0).

    Returns:
        ``[batch, len(rows) or query, key]`` float64.
    """
    return torch.ops.attnscope.attention_flow(
        attn, bool(residual), _head_reduce_code(head_reduce), rows, bool(normalize)
    )


def _analysis_fake_shape(attn: Tensor, rows: list[int] | None) -> tuple[int, int, int]:
    torch._check(attn.dim() == 5, lambda: f"attn must be [layer, batch, head, query, key], got {attn.dim()}-D")
    return (attn.shape[1], attn.shape[3] if rows is None else len(rows), attn.shape[4])


@torch.library.register_fake("attnscope::rollout_generic")
@torch.library.register_fake("attnscope::rollout")
def _rollout_fake(attn, residual, head_reduce, rows):
    return attn.new_empty(_analysis_fake_shape(attn, rows), dtype=probs_dtype(attn.dtype))


@torch.library.register_fake("attnscope::attention_flow_generic")
@torch.library.register_fake("attnscope::attention_flow")
def _attention_flow_fake(attn, residual, head_reduce, rows, normalize):
    return attn.new_empty(_analysis_fake_shape(attn, rows), dtype=torch.float64)
