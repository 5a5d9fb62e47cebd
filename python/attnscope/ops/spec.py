"""``AttentionSpec``: the attention arguments every attention op shares, written down once.

The schemas of ``attention_probs``, ``attention_probs_reduced`` and ``attention_head_stats`` start with the same
nine arguments ``(q, k, mask, scale, is_causal, window, softcap, sinks, query_chunk)``. Here the seven after
``q, k`` are one frozen dataclass; :func:`attention_op` gives a wrapper written as ``fn(q, k, spec, **extra)`` the
public signature ``fn(q, k, mask=None, *, scale=None, ..., query_chunk=0, spec=None, **extra)``, so callers pass
either the keywords or a ready ``spec=``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from typing import Any, Callable, TypeVar

import torch
from torch import Tensor

__all__ = ["AttentionSpec", "attention_op", "probs_dtype"]

R = TypeVar("R")


@dataclasses.dataclass(frozen=True)
class AttentionSpec:
    """Which keys a query sees and how its logits are formed: the shared arguments of the attention ops.

    Attributes:
        mask: boolean (True = attend, the SDPA convention) or additive float, broadcastable to
            ``[batch, 1 or q_heads, q_len, k_len]``. Additive values are added as given.
        scale: logit scale; ``1/sqrt(head_dim)`` when None.
        is_causal: queries are aligned to the end of the keys (KV-cache convention) and see keys up to their
            own absolute position.
        window: > 0 makes key ``j`` visible from query ``i`` only when ``0 <= i - j < window``.
        softcap: > 0 turns logits into ``softcap * tanh(logits / softcap)``.
        sinks: ``[q_heads]`` learned logits that join the softmax and are then dropped (gpt-oss).
        query_chunk: query rows per task (bounds temporary memory to ``chunk * k_len`` per head); 0 = automatic.
    """

    mask: Tensor | None = None
    scale: float | None = None
    is_causal: bool = False
    window: int = 0
    softcap: float = 0.0
    sinks: Tensor | None = None
    query_chunk: int = 0

    def op_args(self, q: Tensor) -> tuple[Any, ...]:
        """The spec as the schema's arguments after ``q, k`` (with the default scale resolved from ``q``)."""
        scale = self.scale
        if scale is None:
            if q.dim() < 1 or q.shape[-1] == 0:
                raise ValueError(
                    f"q must be [batch, q_heads, q_len, head_dim] with head_dim > 0, got shape {tuple(q.shape)}"
                )
            scale = 1.0 / math.sqrt(q.shape[-1])
        return (self.mask, float(scale), bool(self.is_causal), int(self.window), float(self.softcap), self.sinks,
                int(self.query_chunk))

    def detached(self) -> AttentionSpec:
        """The same spec with ``mask`` and ``sinks`` cut from the autograd graph."""
        return dataclasses.replace(self, mask=_detach(self.mask), sinks=_detach(self.sinks))

    @classmethod
    def from_op_args(cls, args: tuple[Any, ...]) -> tuple[AttentionSpec, tuple[Any, ...]]:
        """Split a schema's arguments after ``q, k`` into the spec and the op's own arguments that follow it."""
        n = len(FIELDS)
        return cls(*args[:n]), tuple(args[n:])

    @staticmethod
    def gradients(**grads: Tensor | None) -> tuple[Tensor | None, ...]:
        """One gradient per spec argument (None unless given by name), for a ``register_autograd`` backward."""
        unknown = set(grads) - set(FIELDS)
        if unknown:
            raise TypeError(f"no attention argument named {sorted(unknown)}; the spec has {list(FIELDS)}")
        return tuple(grads.get(name) for name in FIELDS)


FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(AttentionSpec))


def _detach(t: Tensor | None) -> Tensor | None:
    return t.detach() if isinstance(t, Tensor) else t


def probs_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the attention ops compute and return for inputs of ``dtype`` (float64 stays, the rest float32)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def attention_op(fn: Callable[..., R]) -> Callable[..., R]:
    """Give ``fn(q, k, spec, *, **extra)`` the public signature ``(q, k, mask=None, *, <spec fields>, spec=None,
    **extra)``: the attention keywords build an :class:`AttentionSpec`, or ``spec=`` passes one (not both)."""
    params = list(inspect.signature(fn).parameters.values())
    if [p.name for p in params[:3]] != ["q", "k", "spec"]:
        raise TypeError(f"{fn.__name__} must take (q, k, spec, ...) to be an attention op")
    extra = params[3:]
    defaults = AttentionSpec()
    keyword = inspect.Parameter.KEYWORD_ONLY

    @functools.wraps(fn)
    def wrapper(q: Tensor, k: Tensor, mask: Tensor | None = None, *, spec: AttentionSpec | None = None,
                **kwargs: Any) -> R:
        given = {name: kwargs.pop(name) for name in FIELDS[1:] if name in kwargs}
        if spec is None:
            spec = AttentionSpec(mask, **given)
        elif not isinstance(spec, AttentionSpec):
            raise TypeError(f"spec must be an attnscope.ops.AttentionSpec, got {type(spec).__name__}")
        elif mask is not None or given:
            both = (["mask"] if mask is not None else []) + sorted(given)
            raise TypeError(f"{fn.__name__}: pass the attention arguments either in spec= or as {both}, not both")
        return fn(q, k, spec, **kwargs)

    wrapper.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            params[0],
            params[1],
            inspect.Parameter("mask", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                              annotation="Tensor | None"),
            *(inspect.Parameter(f.name, keyword, default=getattr(defaults, f.name), annotation=f.type)
              for f in dataclasses.fields(AttentionSpec) if f.name != "mask"),
            inspect.Parameter("spec", keyword, default=None, annotation="AttentionSpec | None"),
            *(p.replace(kind=keyword) for p in extra),
        ],
        return_annotation=inspect.signature(fn).return_annotation,
    )
    return wrapper
