"""Linear surrogates: weighted least squares and lasso (LIME, KernelSHAP).

pybind11 functions of the C++ core (``cpp/src/wls.cpp``, bound in ``cpp/python/module.cpp``), not
``TORCH_LIBRARY`` ops: Eigen solvers with options and a result object. The solve runs without the GIL.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._extension import _C

__all__ = ["RankDeficientError", "WlsSolution", "weighted_lasso", "weighted_least_squares"]


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
