"""The single door to the C++ ops: typed wrappers, fake (meta) kernels and autograd formulas.

Every tensor-in/tensor-out kernel is a ``torch.ops.attnscope`` op, so it works under autograd,
``torch.compile`` and ``torch.library.opcheck``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch
from torch import Tensor

from ._extension import _C  # loads the ops library; also holds the pybind11 solvers

__all__ = ["ReducedAttention", "attention_probs", "attention_probs_reduced"]


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


class ReducedAttention(NamedTuple):
    """What :func:`attention_probs_reduced` returns; tensors not asked for are empty."""

    weights: Tensor  # [batch, heads_sel, q_len, k_len], or [batch, q_len, k_len] when reduced over heads
    topk_values: Tensor  # [batch, heads_sel, q_len, topk]
    topk_indices: Tensor  # [batch, heads_sel, q_len, topk], int64 key indices
    entropy: Tensor  # [batch, heads_sel, q_len], nats


def attention_probs_reduced(
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
    heads: Sequence[int] | None = None,
    reduce: str | None = None,
    keep_weights: bool = True,
    topk: int = 0,
    entropy: bool = False,
) -> ReducedAttention:
    """Attention probabilities reduced inside the chunk loop (same inputs as :func:`attention_probs`).

    ``heads`` selects q heads; ``reduce`` in {None, "mean", "max", "sum"} combines the selected heads (dropping the
    head axis); ``topk`` keeps the k largest probabilities per row and head; ``entropy`` adds each row's entropy.
    The full ``[batch, heads, q_len, k_len]`` tensor is never built, and temporary memory does not grow with the
    number of heads. Not differentiable.
    """
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    return ReducedAttention(
        *torch.ops.attnscope.attention_probs_reduced(
            q, k, mask, float(scale), bool(is_causal), int(window), float(softcap), sinks, int(query_chunk),
            None if heads is None else [int(h) for h in heads], reduce or "none", bool(keep_weights), int(topk),
            bool(entropy),
        )
    )


@torch.library.register_fake("attnscope::attention_probs_reduced")
def _attention_probs_reduced_fake(
    q, k, mask, scale, is_causal, window, softcap, sinks, query_chunk, heads, reduce, keep_weights, topk, entropy
):
    dtype = _probs_dtype(q.dtype)
    batch, q_len, k_len = q.shape[0], q.shape[2], k.shape[2]
    n_sel = q.shape[1] if heads is None or len(heads) == 0 else len(heads)
    if not keep_weights:
        weights = q.new_empty((0,), dtype=dtype)
    elif reduce == "none":
        weights = q.new_empty((batch, n_sel, q_len, k_len), dtype=dtype)
    else:
        weights = q.new_empty((batch, q_len, k_len), dtype=dtype)
    top_shape = (batch, n_sel, q_len, topk) if topk > 0 else (0,)
    return (
        weights,
        q.new_empty(top_shape, dtype=dtype),
        q.new_empty(top_shape, dtype=torch.long),
        q.new_empty((batch, n_sel, q_len) if entropy else (0,), dtype=dtype),
    )


# ---- analysis: attention rollout and attention flow ------------------------------------------------------------

__all__ += ["rollout", "attention_flow"]

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


@torch.library.register_fake("attnscope::rollout")
def _rollout_fake(attn, residual, head_reduce, rows):
    return attn.new_empty(_analysis_fake_shape(attn, rows), dtype=_probs_dtype(attn.dtype))


@torch.library.register_fake("attnscope::attention_flow")
def _attention_flow_fake(attn, residual, head_reduce, rows, normalize):
    return attn.new_empty(_analysis_fake_shape(attn, rows), dtype=torch.float64)


# ---- attribution: attention x gradient relevance ---------------------------------------------------------------

__all__ += ["attention_grad_relevance"]


def attention_grad_relevance(attn: Tensor, grad: Tensor) -> Tensor:
    """Chefer et al. (2021) relevance: per layer ``Abar = mean_h max(0, grad * attn)``, ``R <- R + Abar @ R``.

    Args:
        attn, grad: ``[layer, batch, head, n, n]`` attention probabilities and dF/dA, first layer first.

    Returns:
        ``[batch, n, n]``; row ``i`` is the relevance of each input token for position ``i``.
    """
    return torch.ops.attnscope.attention_grad_relevance(attn, grad)


@torch.library.register_fake("attnscope::attention_grad_relevance")
def _attention_grad_relevance_fake(attn, grad):
    dtype = torch.float64 if attn.dtype == torch.float64 else torch.float32
    return attn.new_empty((attn.shape[1], attn.shape[3], attn.shape[4]), dtype=dtype)

# --- attention_head_stats: per-head statistics inside the chunk loop ------------------------------------------------

HEAD_STAT_NAMES = ("prev_token", "induction", "duplicate_token", "entropy", "first_token", "distance")


class HeadStatSums(NamedTuple):
    """What :func:`attention_head_stats` returns: per-example sums and counted rows; the mean is ``sums / counts``."""

    sums: Tensor  # [batch, q_heads, 6] float64, columns in HEAD_STAT_NAMES order
    counts: Tensor  # [batch, 6] int64, counted query rows per statistic (the same for every head)


def attention_head_stats(
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
    input_ids: Tensor | None = None,
    valid: Tensor | None = None,
    induction_period: int = 0,
) -> HeadStatSums:
    """Per-head attention statistics computed from the probabilities inside the chunk loop (never stored).

    Same attention inputs as :func:`attention_probs`. ``input_ids`` ``[batch, k_len]`` enables the duplicate-token
    and induction statistics; ``valid`` ``[batch, k_len]`` (bool or 0/1) marks real tokens, so padding rows and keys
    are not counted; ``induction_period`` is the repeated segment's length ``P >= 2`` (0 = no induction statistic).
    With query row ``i`` at absolute position ``i + k_len - q_len`` and ``p`` its probabilities, summed over the
    valid rows that each statistic counts:

    - ``prev_token``: ``p[i-1]``; rows whose position ``i-1`` is valid.
    - ``induction``: ``p[i-P+1]``; rows with ``i-P`` and ``i-P+1`` valid and ``input_ids[i] == input_ids[i-P]``.
    - ``duplicate_token``: ``sum p[j]`` over valid ``j < i`` with ``input_ids[j] == input_ids[i]``; rows with such a j.
    - ``entropy``: ``-sum p[j] log p[j]`` (nats); every valid row.
    - ``first_token``: ``p[f]`` with ``f`` the first valid position; every valid row.
    - ``distance``: ``sum p[j] |i - j|``; every valid row.

    Not differentiable.
    """
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    return HeadStatSums(
        *torch.ops.attnscope.attention_head_stats(
            q, k, mask, float(scale), bool(is_causal), int(window), float(softcap), sinks, int(query_chunk),
            input_ids, valid, int(induction_period),
        )
    )


@torch.library.register_fake("attnscope::attention_head_stats")
def _attention_head_stats_fake(
    q, k, mask, scale, is_causal, window, softcap, sinks, query_chunk, input_ids, valid, induction_period
):
    n = len(HEAD_STAT_NAMES)
    return q.new_empty((q.shape[0], q.shape[1], n), dtype=torch.float64), q.new_empty((q.shape[0], n), dtype=torch.long)


__all__ += ["HEAD_STAT_NAMES", "HeadStatSums", "attention_head_stats"]

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

# --- linear surrogates: weighted least squares and lasso (LIME, KernelSHAP) ----------------------------------------
# pybind11 functions of the C++ core (cpp/src/wls.cpp); the solve runs without the GIL.

__all__ += ["RankDeficientError", "WlsSolution", "weighted_lasso", "weighted_least_squares"]


class RankDeficientError(ValueError):
    """The weighted design has lower numerical rank than the number of coefficients to fit (and ridge is 0)."""


@dataclasses.dataclass(frozen=True)
class WlsSolution:
    """What :func:`weighted_least_squares` and :func:`weighted_lasso` return."""

    coef: Tensor  # [p] float64
    intercept: float
    r2: float  # weighted R² on the given samples (scikit-learn's score(X, y, sample_weight))
    rank: int  # numerical rank of the centred, weighted design (after ridge augmentation); -1 for the lasso
    rank_deficient: bool  # rank < coefficients to fit, with ridge == 0; the coefficients are then minimum-norm
    condition: float  # sigma_max / sigma_min of that design (inf when singular); nan for the lasso
    n_iter: int  # coordinate-descent sweeps; 0 for the direct solve
    converged: bool  # False when the lasso stopped at max_iter above tolerance; True for the direct solve


def _float64_array(name: str, value: Any, ndim: int, *, fortran: bool = False) -> np.ndarray:
    if isinstance(value, Tensor):
        if value.is_complex():
            raise ValueError(f"{name} must be real, got a {value.dtype} tensor")
        value = value.detach().to(device="cpu", dtype=torch.float64).numpy()
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be a real array, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        expected = "[n_samples, n_features]" if ndim == 2 else "[n_samples]"
        raise ValueError(f"{name} must be {ndim}-D {expected}, got shape {tuple(arr.shape)}")
    return np.asfortranarray(arr, dtype=np.float64) if fortran else np.ascontiguousarray(arr, dtype=np.float64)


def _regression_arrays(X: Any, y: Any, w: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # X in column-major order: the C++ core takes Eigen's layout, so pybind11 makes no second copy.
    Xa = _float64_array("X", X, 2, fortran=True)
    ya = _float64_array("y", y, 1)
    if ya.shape[0] != Xa.shape[0]:
        raise ValueError(f"y must have one value per row of X: X has shape {Xa.shape}, y has shape {ya.shape}")
    wa = np.ones(Xa.shape[0]) if w is None else _float64_array("w", w, 1)
    if wa.shape[0] != Xa.shape[0]:
        raise ValueError(f"w must have one weight per row of X: X has shape {Xa.shape}, w has shape {wa.shape}")
    return Xa, ya, wa


def _solution(res: Any) -> WlsSolution:
    return WlsSolution(
        coef=torch.from_numpy(np.asarray(res.coef, dtype=np.float64)),
        intercept=float(res.intercept),
        r2=float(res.r2),
        rank=int(res.rank),
        rank_deficient=bool(res.rank_deficient),
        condition=float(res.condition),
        n_iter=int(res.n_iter),
        converged=bool(res.converged),
    )


def weighted_least_squares(
    X: Tensor | np.ndarray,
    y: Tensor | np.ndarray,
    w: Tensor | np.ndarray | None = None,
    *,
    ridge: float = 0.0,
    fit_intercept: bool = True,
    fixed_intercept: float | None = None,
    coef_sum: float | None = None,
    rcond: float = 1e-10,
    allow_rank_deficient: bool = False,
) -> WlsSolution:
    """Minimise ``sum_i w_i (y_i - b - x_i . c)^2 + ridge * |c|^2`` (the intercept ``b`` is not penalised).

    The semantics of scikit-learn's ``Ridge(alpha=ridge)`` / ``LinearRegression`` with ``sample_weight=w``
    (weighted centring when ``fit_intercept``), solved in float64 by QR + SVD of the ``sqrt(w)``-scaled design.

    Args:
        X: ``[n_samples, n_features]``, any real dtype (numpy array or tensor; converted to float64).
        y: ``[n_samples]`` targets.
        w: ``[n_samples]`` finite weights ``>= 0``, at least one positive; ones when None.
        ridge: L2 penalty ``>= 0`` on the coefficients.
        fit_intercept: fit ``b`` (ignored when ``fixed_intercept`` is given); ``b = 0`` otherwise.
        fixed_intercept: ``b`` is this value, not fitted (exact KernelSHAP: ``f(baseline)``).
        coef_sum: constrain ``sum(c)`` to this value exactly (exact KernelSHAP: ``f(x) - f(baseline)``).
        rcond: singular values ``<= rcond * sigma_max`` count as zero; negative means ``eps * max(n, p)``.
        allow_rank_deficient: return the minimum-norm solution (``numpy.linalg.lstsq``'s) with
            ``rank_deficient=True`` instead of raising :class:`RankDeficientError`.

    Returns:
        :class:`WlsSolution` with ``coef`` ``[n_features]`` float64.

    Raises:
        ValueError: bad shapes or values (the message names the argument).
        RankDeficientError: the design's rank is below the number of coefficients to fit and ``ridge == 0``.
    """
    Xa, ya, wa = _regression_arrays(X, y, w)
    res = _C.weighted_least_squares(
        Xa, ya, wa, ridge=float(ridge), fit_intercept=bool(fit_intercept),
        fixed_intercept=None if fixed_intercept is None else float(fixed_intercept),
        coef_sum=None if coef_sum is None else float(coef_sum), rcond=float(rcond),
    )
    if res.rank_deficient and not allow_rank_deficient:
        n_free = Xa.shape[1] - (coef_sum is not None)
        raise RankDeficientError(
            f"the weighted design has numerical rank {res.rank} but {n_free} coefficients to fit "
            f"(X has shape {Xa.shape}, {int(np.count_nonzero(wa))} positive weights); use ridge > 0 or more samples, "
            "or pass allow_rank_deficient=True for the minimum-norm solution"
        )
    return _solution(res)


def weighted_lasso(
    X: Tensor | np.ndarray,
    y: Tensor | np.ndarray,
    w: Tensor | np.ndarray | None = None,
    *,
    alpha: float,
    fit_intercept: bool = True,
    max_iter: int = 10000,
    tol: float = 1e-8,
) -> WlsSolution:
    """Minimise ``(1 / (2 sum(w))) sum_i w_i (y_i - b - x_i . c)^2 + alpha * |c|_1`` by cyclic coordinate descent.

    The objective of scikit-learn's ``Lasso(alpha).fit(X, y, sample_weight=w)`` (which rescales ``w`` to sum to
    ``n_samples``); the stopping rule is its duality gap ``<= tol * sum_i w_i (y_i - ybar)^2``.

    Args:
        X: ``[n_samples, n_features]``, any real dtype (as for :func:`weighted_least_squares`).
        y: ``[n_samples]`` targets.
        w: ``[n_samples]`` finite weights ``>= 0``, at least one positive; ones when None.
        alpha: L1 penalty ``>= 0``.
        fit_intercept: fit ``b`` by weighted centring; ``b = 0`` otherwise.
        max_iter: coordinate-descent sweeps at most.
        tol: relative duality-gap tolerance.

    Returns:
        :class:`WlsSolution`; ``n_iter`` and ``converged`` report the descent, ``rank = -1`` and
        ``condition = nan`` (not computed).
    """
    Xa, ya, wa = _regression_arrays(X, y, w)
    return _solution(
        _C.weighted_lasso(
            Xa, ya, wa, alpha=float(alpha), fit_intercept=bool(fit_intercept), max_iter=int(max_iter), tol=float(tol)
        )
    )
