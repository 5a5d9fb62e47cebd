"""Fallback for models whose attention does not go through transformers' AttentionInterface."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import torch
from torch import Tensor, nn

from ..results import AttentionResult
from .function import CaptureOptions


def eager_capture(model: nn.Module, inputs: dict[str, Tensor], layers: list[int] | None,
                  opts: CaptureOptions) -> tuple[AttentionResult, Any]:
    """Capture with ``output_attentions=True`` under eager attention (full memory cost), with a warning."""
    warnings.warn(
        f"{type(model).__name__} does not route attention through transformers' AttentionInterface; attnscope "
        "falls back to eager attention with output_attentions=True (slower, and it stores every layer's full "
        "attention)",
        RuntimeWarning,
        stacklevel=3,
    )
    config = model.config
    saved = config.__dict__.get("_attn_implementation_internal")
    try:
        config.__dict__["_attn_implementation_internal"] = "eager"
        outputs = model(**inputs, output_attentions=True)
    finally:
        config.__dict__["_attn_implementation_internal"] = saved
    if getattr(outputs, "encoder_attentions", None) is not None:  # encoder-decoder: one result per stack
        stacks = {name: _stack_result(getattr(outputs, f"{name}_attentions"), layers, opts)
                  for name in ("encoder", "decoder", "cross")}
        result = dataclasses.replace(stacks["encoder"], encoder=stacks["encoder"], decoder=stacks["decoder"],
                                     cross=stacks["cross"])
        return result, outputs
    return _stack_result(outputs.attentions, layers, opts), outputs


def _stack_result(attentions: Any, layers: list[int] | None, opts: CaptureOptions) -> AttentionResult:
    attentions = [a for a in attentions if a is not None]
    chosen = list(range(len(attentions))) if layers is None else layers
    full = torch.stack([attentions[i].detach().float() for i in chosen])  # [layer, batch, head, q, k]
    sel = full if opts.heads is None else full[:, :, opts.heads]
    weights = {"mean": lambda t: t.mean(2), "sum": lambda t: t.sum(2), "max": lambda t: t.amax(2)}.get(
        opts.reduce, lambda t: t)(sel)
    result = AttentionResult(weights=weights if opts.keep_weights else None, layers=chosen, heads=opts.heads,
                             reduce=opts.reduce)
    if opts.topk:
        result.topk_values, result.topk_indices = sel.topk(opts.topk, dim=-1)
    if opts.entropy:
        result.entropy = -torch.where(sel > 0, sel * sel.log(), torch.zeros_like(sel)).sum(-1)
    return result
