"""The single door to the C++ ops: typed wrappers, fake (meta) kernels and autograd formulas.

Every tensor-in/tensor-out kernel is a ``torch.ops.attnscope`` op, so it works under autograd,
``torch.compile`` and ``torch.library.opcheck``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._extension import _C  # noqa: F401  (loads the library that defines the ops)

__all__ = ["attention_probs"]


def _probs_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def attention_probs(
    q: Tensor,
    k: Tensor,
    mask: Tensor | None = None,
    *,
    scale: float | None = None,
    is_causal: bool = False,
    window: int = 0,
    softcap: float = 0.0,
    sinks: Tensor | None = None,
    query_chunk: int = 0,
) -> Tensor:
    """Attention probabilities ``softmax(scale * q @ k^T)``, computed in query chunks.

    Args:
        q: ``[batch, q_heads, q_len, head_dim]``.
        k: ``[batch, kv_heads, k_len, head_dim]``; ``q_heads`` must be a multiple of ``kv_heads``
            (grouped-query attention maps q head ``h`` to kv head ``h // (q_heads // kv_heads)``, no copies).
        mask: boolean (True = attend, the SDPA convention) or additive float, broadcastable to
            ``[batch, 1 or q_heads, q_len, k_len]``. Additive values are added as given.
        scale: logit scale; ``1/sqrt(head_dim)`` when None.
        is_causal: queries are aligned to the end of the keys (KV-cache convention) and see keys up to their
            own absolute position.
        window: > 0 makes key ``j`` visible from query ``i`` only when ``0 <= i - j < window``.
        softcap: > 0 turns logits into ``softcap * tanh(logits / softcap)``.
        sinks: ``[q_heads]`` learned logits that join the softmax and are then dropped (gpt-oss).
        query_chunk: query rows per task (bounds temporary memory to ``chunk * k_len`` per head); 0 = automatic.

    Returns:
        ``[batch, q_heads, q_len, k_len]`` probabilities, float32 (float64 for float64 input). Rows with no
        visible key are zeros.
    """
    if scale is None:
        if q.dim() < 1 or q.shape[-1] == 0:
            raise ValueError(f"q must be [batch, q_heads, q_len, head_dim] with head_dim > 0, got shape {tuple(q.shape)}")
        scale = 1.0 / math.sqrt(q.shape[-1])
    return torch.ops.attnscope.attention_probs(
        q, k, mask, float(scale), bool(is_causal), int(window), float(softcap), sinks, int(query_chunk)
    )


@torch.library.register_fake("attnscope::attention_probs")
def _attention_probs_fake(q, k, mask, scale, is_causal, window, softcap, sinks, query_chunk):
    torch._check(q.dim() == 4, lambda: f"q must be [batch, q_heads, q_len, head_dim], got {q.dim()}-D")
    torch._check(k.dim() == 4, lambda: f"k must be [batch, kv_heads, k_len, head_dim], got {k.dim()}-D")
    return q.new_empty((q.shape[0], q.shape[1], q.shape[2], k.shape[2]), dtype=_probs_dtype(q.dtype))


@torch.library.register_fake("attnscope::attention_probs_backward")
def _attention_probs_backward_fake(grad, probs, q, k, scale, softcap, sinks, query_chunk):
    dtype = _probs_dtype(q.dtype)
    dsinks = q.new_empty((q.shape[1],) if sinks is not None else (0,), dtype=dtype)
    return q.new_empty(q.shape, dtype=dtype), k.new_empty(k.shape, dtype=dtype), dsinks


def _setup_context(ctx, inputs, output):
    q, k, _mask, scale, _is_causal, _window, softcap, sinks, query_chunk = inputs
    ctx.save_for_backward(q, k, sinks, output)
    ctx.scale, ctx.softcap, ctx.query_chunk = scale, softcap, query_chunk
    ctx.has_sinks = sinks is not None


def _backward(ctx, grad):
    q, k, sinks, probs = ctx.saved_tensors
    dq, dk, dsinks = torch.ops.attnscope.attention_probs_backward(
        grad, probs, q, k, ctx.scale, ctx.softcap, sinks if ctx.has_sinks else None, ctx.query_chunk
    )
    dsinks_out = dsinks.to(sinks.dtype) if ctx.has_sinks else None
    # One gradient per schema argument: q, k, mask, scale, is_causal, window, softcap, sinks, query_chunk.
    return dq.to(q.dtype), dk.to(k.dtype), None, None, None, None, None, dsinks_out, None


torch.library.register_autograd("attnscope::attention_probs", _backward, setup_context=_setup_context)


# --- quadrature (path attribution) --------------------------------------------------------------------------
# Rules on [0, 1] for integrated gradients; the C++ core is cpp/src/quadrature.cpp. All outputs are float64.

__all__ += ["QUADRATURE_RULES", "composite_gauss_legendre", "quadrature_rule", "refine_segments"]

QUADRATURE_RULES = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")


def quadrature_rule(method: str, n: int) -> tuple[Tensor, Tensor]:
    """Points and weights of an ``n``-point rule on ``[0, 1]``.

    Args:
        method: one of ``QUADRATURE_RULES`` (the same layouts as Captum's ``approximation_parameters``).
        n: number of points (>= 1; >= 2 for ``riemann_trapezoid``).

    Returns:
        ``(alphas [n], weights [n])`` float64; ``weights.sum() == 1``.
    """
    if method not in QUADRATURE_RULES:
        raise ValueError(f"unknown integration method {method!r}; use one of {', '.join(QUADRATURE_RULES)}")
    return torch.ops.attnscope.quadrature_rule(method, int(n))


def composite_gauss_legendre(bounds: Tensor, order: int) -> tuple[Tensor, Tensor]:
    """Gauss-Legendre of ``order`` points on every segment of ``bounds`` ``[segments + 1]`` (float64, increasing).

    Returns ``(alphas, weights)``, each ``[segments * order]``, segment-major.
    """
    return torch.ops.attnscope.composite_gauss_legendre(bounds, int(order))


def refine_segments(bounds: Tensor, errors: Tensor, tolerance: float, max_new: int) -> Tensor:
    """Split the segments with the largest ``errors`` ``[segments]`` in halves until the unsplit errors sum to at
    most ``tolerance`` (at most ``max_new`` splits). Returns the new float64 ``bounds``."""
    return torch.ops.attnscope.refine_segments(bounds, errors, float(tolerance), int(max_new))


@torch.library.register_fake("attnscope::quadrature_rule")
def _quadrature_rule_fake(method, n):
    return torch.empty((n,), dtype=torch.float64), torch.empty((n,), dtype=torch.float64)


@torch.library.register_fake("attnscope::composite_gauss_legendre")
def _composite_gauss_legendre_fake(bounds, order):
    n = (bounds.shape[0] - 1) * order
    return bounds.new_empty((n,), dtype=torch.float64), bounds.new_empty((n,), dtype=torch.float64)


@torch.library.register_fake("attnscope::refine_segments")
def _refine_segments_fake(bounds, errors, tolerance, max_new):
    ctx = torch.library.get_ctx()
    return bounds.new_empty((ctx.new_dynamic_size(),), dtype=torch.float64)
