"""The public functions: validate arguments, pick an engine, return result objects."""

from __future__ import annotations

from typing import Any, Sequence

from torch import nn

from .capturing.forward import capture_forward
from .inputs import model_inputs
from .results import AttentionResult
from .model_lock import holds_model


@holds_model
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
    truncation: bool = False,
) -> AttentionResult:
    """Exact attention weights of one forward pass, while the model keeps its own attention implementation.

    Args:
        model: a Hugging Face model (any architecture whose attention goes through AttentionInterface; others
            fall back to eager ``output_attentions`` with a warning).
        inputs: a tokenizer's output, an ``input_ids`` tensor ``[batch, seq]``, or a string / list of strings with
            ``tokenizer=`` (see :func:`attnscope.inputs.model_inputs`).
        layers: see :class:`attnscope.capture`.
        heads: see :class:`attnscope.capture`.
        reduce: see :class:`attnscope.capture`.
        topk: see :class:`attnscope.capture`.
        entropy: see :class:`attnscope.capture`.
        tokenizer: see :class:`attnscope.capture`.
        query_chunk: see :class:`attnscope.capture`.
        grad: keep the forward's graph (``res.outputs``, the model's outputs); after a backward from any scalar of
            them (``res.outputs.logits[0, -1].max().backward()``), ``res.grad`` holds dF/dP ``[layer, batch, head,
            query, key]``, the gradient of that scalar with respect to each attention weight (attention×gradient).
        truncation: inputs longer than the model's positions raise a ValueError naming both lengths; True keeps
            each example's first tokens instead, with a warning.

    Returns:
        AttentionResult with ``weights`` ``[layer, batch, head, query, key]`` (``[layer, batch, query, key]`` when
        reduced). Encoder-decoder models also fill ``.encoder``, ``.decoder`` and ``.cross``.
    """
    kwargs = model_inputs(inputs, tokenizer=tokenizer, model=model, truncation=truncation).kwargs
    result, outputs = capture_forward(model, kwargs, layers=layers, heads=heads, reduce=reduce, topk=topk,
                                      entropy=entropy, grad=grad, tokenizer=tokenizer, query_chunk=query_chunk)
    if grad:
        result.outputs = outputs
    return result
