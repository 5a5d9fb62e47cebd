"""Attention flow (Abnar & Zuidema, 2020): max-flow through the layered attention graph, solved in C++."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import Tensor

from .. import ops
from .checks import attention_tensor, head_reduce_checked, on_device_of, residual_default, rows_checked


def attention_flow(
    res: Any,
    *,
    rows: int | Iterable[int] | Tensor | None = None,
    residual: bool | None = None,
    head_reduce: str = "mean",
    normalize: bool = True,
) -> Tensor:
    """The max-flow value from each output position (top layer) to each input token (bottom layer).

    The graph has a node per (layer boundary ``l = 0..n``, position); the arc ``(l + 1, i) -> (l, j)`` has capacity
    ``Â_l[i, j]`` (see :func:`rollout` for ``Â``). Entry ``[b, r, t]`` is the max-flow from ``(n, rows[r])`` to
    ``(0, t)``, solved exactly (Dinic's algorithm, float64) for every pair in parallel, without the GIL.

    Args:
        res: an ``AttentionResult`` (its ``.weights``, ``[layer, batch, head, query, key]`` or, with heads already
            reduced, ``[layer, batch, query, key]``) or a Tensor ``[layer, batch, head, query, key]``, with
            ``query == key``.
        rows: only these output positions (negative counts from the end); all when None. Each row costs
            ``key`` max-flow problems on a graph of about ``layers · L²`` arcs.
        residual: add the identity (the residual stream) and renormalise rows, as for :func:`rollout` (None: as
            there, True unless the context-mixing result already includes the residual).
        head_reduce: ``"mean"`` or ``"max"`` over heads, as for :func:`rollout`.
        normalize: divide each output row by its sum, as the paper's code does (a row summing to 0 stays 0).

    Returns:
        Tensor ``[batch, len(rows) or query, key]``, float64, on the weights' device.
    """
    attn = attention_tensor(res, "attention_flow")
    picked = rows_checked(rows, attn.shape[3])
    out = ops.attention_flow(
        attn, residual=residual_default(res, residual), head_reduce=head_reduce_checked(head_reduce), rows=picked,
        normalize=normalize,
    )
    return on_device_of(out, res)


__all__ = ["attention_flow"]
