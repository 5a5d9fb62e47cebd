"""What rollout and attention flow accept: an AttentionResult or a tensor, rows as ints, negative from the end."""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

HEAD_REDUCES = ("mean", "max")


def attention_tensor(res: Any, fn: str) -> Tensor:
    """``res.weights`` (an AttentionResult) or ``res`` itself, as ``[layer, batch, head, query, key]`` on its device.

    A result's 4-D ``.weights`` ``[layer, batch, query, key]`` (heads already reduced, as
    ``capture_attention(reduce="mean")`` gives) is taken as one head. A bare 4-D tensor is refused: it could as well be
    one layer's ``[batch, head, query, key]`` (a Hugging Face ``attentions`` entry), and guessing wrong is silent.
    """
    weights = getattr(res, "weights", res)
    if weights is None and res is not None:
        kept = [name for name in ("topk_values", "entropy") if getattr(res, name, None) is not None]
        raise ValueError(
            f"{fn} needs the attention weights, but this {type(res).__name__} was captured without them (it keeps "
            f"only {' and '.join(kept) or 'no weights'}: topk=/entropy= without reduce= replace the weights). Capture "
            "with the weights kept: capture_attention(model, inputs) for every head, or add reduce='mean' to keep "
            "head-averaged weights beside the top-k/entropy"
        )
    if not isinstance(weights, Tensor):
        raise TypeError(
            f"{fn} takes an AttentionResult (with .weights) or a Tensor [layer, batch, head, query, key], "
            f"got {type(res).__name__}"
        )
    if weights.dim() == 4 and weights is not res:
        weights = weights.unsqueeze(2)
    elif weights.dim() == 4:
        raise ValueError(
            f"{fn} needs attention weights [layer, batch, head, query, key], got a 4-D tensor of shape "
            f"{tuple(weights.shape)}; stack a model's per-layer attentions with torch.stack(out.attentions), or pass "
            "weights whose heads are already reduced as weights.unsqueeze(2)"
        )
    if weights.dim() != 5:
        raise ValueError(
            f"{fn} needs attention weights [layer, batch, head, query, key] (or [layer, batch, query, key] with "
            f"heads already reduced), got a {weights.dim()}-D tensor of shape {tuple(weights.shape)}"
        )
    if not weights.is_floating_point():
        raise ValueError(f"{fn} needs floating attention weights (probabilities), got dtype {weights.dtype}")
    if weights.shape[3] != weights.shape[4]:
        raise ValueError(
            f"{fn} chains layers, so it needs self-attention over one sequence (query length == key length), got "
            f"query={weights.shape[3]} and key={weights.shape[4]} (shape {tuple(weights.shape)}); "
            "capture without a KV cache (no generate() steps) to get square attention"
        )
    weights = weights.detach()  # stays on its device: the ops run on every device
    if getattr(res, "method", None) is not None:
        # A context-mixing result: scores, not probabilities; chain each row's shares (a zero row stays zero).
        total = weights.sum(-1, keepdim=True)
        weights = torch.where(total > 0, weights / total.clamp_min(torch.finfo(weights.dtype).tiny), weights)
    return weights


def residual_default(res: Any, residual: bool | None) -> bool:
    """``residual`` as given, or (None) True unless ``res`` is a context-mixing result whose scores already account
    for the residual stream (ALTI, value zeroing)."""
    if residual is None:
        return not getattr(res, "residual_included", False)
    return bool(residual)


def head_reduce_checked(head_reduce: str) -> str:
    if head_reduce not in HEAD_REDUCES:
        raise ValueError(f"head_reduce must be 'mean' or 'max', got {head_reduce!r}")
    return head_reduce


def rows_checked(rows: int | Iterable[int] | Tensor | None, length: int) -> list[int] | None:
    """Rows as a list of ints in ``0..length-1``; negative ones count from the end, like Python indexing."""
    if rows is None:
        return None
    if isinstance(rows, Tensor):
        if rows.dtype.is_floating_point or rows.dim() > 1:
            raise ValueError(f"rows must be integers (a list, a range or a 1-D integer tensor), got {rows!r}")
        rows = rows.tolist()
    if isinstance(rows, int) and not isinstance(rows, bool):
        rows = [rows]
    out: list[int] = []
    for r in rows:
        try:
            if isinstance(r, bool):
                raise TypeError
            r = operator.index(r)  # int, numpy integer, 0-d integer tensor
        except TypeError:
            raise ValueError(f"rows must be integers, got {r!r} in rows={rows!r}") from None
        if not -length <= r < length:
            raise ValueError(
                f"rows has {r}, out of range for {length} query positions "
                f"(valid: 0..{length - 1}, or -{length}..-1 counted from the end)"
            )
        out.append(r % length)
    return out


def on_device_of(out: Tensor, res: Any) -> Tensor:
    weights = getattr(res, "weights", res)
    return out if weights.device.type == "cpu" else out.to(weights.device)


__all__ = ["attention_tensor", "head_reduce_checked", "on_device_of", "residual_default", "rows_checked"]
