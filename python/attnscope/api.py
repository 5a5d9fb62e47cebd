"""The public functions: validate arguments, pick an engine, return result objects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from .capturing.forward import capture_forward
from .results import AttentionResult


def as_model_inputs(inputs: Any) -> dict[str, Tensor]:
    """A tokenizer's output (BatchEncoding or dict) or an ``input_ids`` tensor, as forward keyword arguments."""
    if isinstance(inputs, Tensor):
        if inputs.dtype not in (torch.long, torch.int, torch.int32, torch.int64):
            raise TypeError(f"an inputs tensor must hold integer input_ids, got dtype {inputs.dtype}")
        return {"input_ids": inputs if inputs.dim() == 2 else inputs.unsqueeze(0)}
    if isinstance(inputs, Mapping):
        if "input_ids" not in inputs:
            raise ValueError(
                f"inputs has no 'input_ids' (keys: {sorted(inputs.keys())}); pass what the tokenizer returns, "
                "e.g. tokenizer(text, return_tensors='pt'), or an input_ids tensor"
            )
        out = {k: v for k, v in inputs.items() if isinstance(v, Tensor)}
        if out["input_ids"].dim() == 1:
            out = {k: v.unsqueeze(0) for k, v in out.items()}
        return out
    raise TypeError(
        f"inputs must be a tokenizer's output (BatchEncoding/dict with input_ids) or an input_ids tensor, "
        f"got {type(inputs).__name__}"
    )


def capture_attention(
    model: nn.Module,
    inputs: Any,
    *,
    layers: Sequence[int] | int | None = None,
    heads: Sequence[int] | int | None = None,
    reduce: str | None = None,
    topk: int | None = None,
    entropy: bool = False,
    grad: bool = False,
    tokenizer: Any = None,
    query_chunk: int | None = None,
) -> AttentionResult:
    """Exact attention weights of one forward pass, while the model keeps its own attention implementation.

    Args:
        model: a Hugging Face model (any architecture whose attention goes through AttentionInterface; others
            fall back to eager ``output_attentions`` with a warning).
        inputs: a tokenizer's output or an ``input_ids`` tensor ``[batch, seq]``.
        layers: see :class:`attnscope.capture`.
        heads: see :class:`attnscope.capture`.
        reduce: see :class:`attnscope.capture`.
        topk: see :class:`attnscope.capture`.
        entropy: see :class:`attnscope.capture`.
        tokenizer: see :class:`attnscope.capture`.
        query_chunk: see :class:`attnscope.capture`.
        grad: keep the forward's graph; after ``res.outputs.<something>.backward()``, ``res.grad`` holds dF/dP.

    Returns:
        AttentionResult with ``weights`` ``[layer, batch, head, query, key]`` (``[layer, batch, query, key]`` when
        reduced). Encoder-decoder models also fill ``.encoder``, ``.decoder`` and ``.cross``.
    """
    kwargs = as_model_inputs(inputs)
    result, outputs = capture_forward(model, kwargs, layers=layers, heads=heads, reduce=reduce, topk=topk,
                                      entropy=entropy, grad=grad, tokenizer=tokenizer, query_chunk=query_chunk)
    if grad:
        result.outputs = outputs
    return result
