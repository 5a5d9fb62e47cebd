"""The capture engine's consumer interface: code that sees every captured attention call.

A consumer is any object with ``needs_probs`` (bool) and ``on_attention(event)``; pass it to
``ats.capture(model, consumers=[...])`` or ``cap.add_consumer(c)``. The engine calls ``on_attention`` once per
attention call of every captured layer (one forward, or one ``generate()`` step), after the layer output is
computed, under ``torch.no_grad()``, with an :class:`AttentionEvent`. A consumer that declares
``needs_probs = True`` gets the call's probabilities in ``event.probs``; the others get ``event.probs = None``
and no probabilities are built for them (head statistics recompute what they need from ``q``, ``k`` and ``spec``
inside a C++ op, so the ``[batch, heads, q, k]`` tensor never exists).

Consumers see the calls that go through transformers' AttentionInterface; models that fall back to eager
``output_attentions`` do not reach them. An exception raised by a consumer ends the forward and leaves the scope
cleanly (the model's attention implementation is restored, the hooks are removed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol, runtime_checkable

from torch import Tensor, nn

from ..ops import AttentionSpec

__all__ = ["AttentionEvent", "CaptureConsumer", "check_consumer"]


@dataclass(frozen=True)
class AttentionEvent:
    """One attention call as a consumer sees it. Tensors are detached from the autograd graph.

    Attributes:
        layer: the layer index within its stack.
        stack: ``"main"`` (decoder-only and encoder-only models), ``"encoder"``, ``"decoder"`` or ``"cross"``.
        module: the attention module that made the call.
        query: ``[batch, q_heads, q_len, head_dim]`` after position embeddings (what the logits use).
        key: ``[batch, kv_heads, k_len, head_dim]`` (with the cache's earlier keys during generation).
        value: ``[batch, kv_heads, k_len, head_dim]``.
        output: the layer's attention output ``[batch, q_len, q_heads, head_dim]`` (before the output projection).
        spec: the attention arguments as the ops take them (``spec.mask``, ``spec.scale``, ``spec.is_causal``,
            ``spec.window``, ``spec.softcap``, ``spec.sinks``, ``spec.query_chunk``):
            ``attnscope.ops.attention_probs(query, key, spec=spec)`` reproduces the call's probabilities.
        inputs: the tensors the model's forward was called with in this call (``input_ids``,
            ``attention_mask``, ...; during ``generate()`` the step's inputs), by argument name.
        probs: ``[batch, q_heads, q_len, k_len]`` float32 (float64 for float64 models) when some consumer
            declared ``needs_probs``; else None.
    """

    layer: int
    stack: str
    module: nn.Module
    query: Tensor
    key: Tensor
    value: Tensor
    output: Tensor
    spec: AttentionSpec
    inputs: Mapping[str, Tensor]
    probs: Tensor | None = None

    @property
    def mask(self) -> Tensor | None:
        """The attention mask as the ops take it (``spec.mask``): boolean or additive, or None."""
        return self.spec.mask

    @property
    def q_len(self) -> int:
        return self.query.shape[2]

    @property
    def k_len(self) -> int:
        return self.key.shape[2]


@runtime_checkable
class CaptureConsumer(Protocol):
    """What ``ats.capture(model, consumers=[...])`` accepts.

    Attributes:
        needs_probs: True when ``on_attention`` reads ``event.probs`` (the engine then computes the call's full
            probabilities, once for all consumers that ask); False when it computes what it needs from
            ``event.query``, ``event.key`` and ``event.spec`` itself.
    """

    needs_probs: bool

    def on_attention(self, event: AttentionEvent) -> None:
        """Called once per captured attention call, under ``torch.no_grad()``."""


def check_consumer(consumer: Any) -> Any:
    """``consumer`` if it follows :class:`CaptureConsumer`; else a TypeError naming what is missing."""
    name = type(consumer).__name__
    if not callable(getattr(consumer, "on_attention", None)):
        raise TypeError(
            f"a capture consumer needs an on_attention(event) method, got {name} without one; see "
            "attnscope.capturing.CaptureConsumer"
        )
    needs = getattr(consumer, "needs_probs", None)
    if not isinstance(needs, bool):
        raise TypeError(
            f"a capture consumer must declare needs_probs = True or False, got needs_probs={needs!r} on {name}"
        )
    return consumer
