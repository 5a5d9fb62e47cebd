"""Attention rollout (Abnar & Zuidema, 2020): chained per-layer attention with the residual stream."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import Tensor

from .. import ops
from .checks import attention_tensor, head_reduce_checked, on_device_of, residual_default, rows_checked


def rollout(
    res: Any,
    *,
    residual: bool | None = None,
    head_reduce: str = "mean",
    rows: int | Iterable[int] | Tensor | None = None,
) -> Tensor:
    """How much each output position draws on each input token, chaining attention from the first layer up.

    Per layer ``Â_l = rownorm(A_l + I)``, with ``A_l`` the mean (or max) of layer ``l``'s heads; with
    ``residual=False`` ``Â_l = A_l`` as is. The result is ``Â_{n-1} ··· Â_1 Â_0``.

    Args:
        res: an ``AttentionResult`` (its ``.weights``, ``[layer, batch, head, query, key]`` or, with heads already
            reduced, ``[layer, batch, query, key]``) or a Tensor ``[layer, batch, head, query, key]``, with
            ``query == key``.
        residual: account for the residual connection by adding the identity and renormalising rows. None: True,
            except for a context-mixing result whose scores already include the residual stream (ALTI, value
            zeroing; ``res.residual_included``). A context-mixing result's rows are normalised to sum to 1 first.
        head_reduce: ``"mean"`` or ``"max"`` over heads.
        rows: only these query positions (negative counts from the end), computed by vector-matrix products:
            O(layers·L²) instead of O(layers·L³).

    Returns:
        Tensor ``[batch, len(rows) or query, key]``; float64 for float64 weights, else float32. Not differentiable
        (the weights are detached); computed on the weights' device.
    """
    attn = attention_tensor(res, "rollout")
    picked = rows_checked(rows, attn.shape[3])
    out = ops.rollout(attn, residual=residual_default(res, residual), head_reduce=head_reduce_checked(head_reduce), rows=picked)
    return on_device_of(out, res)


__all__ = ["rollout"]
