"""TEST-ONLY stand-in for ``attnscope.ops.weighted_least_squares`` / ``weighted_lasso`` while the C++ solver
(branch ``solver``, commits ``wls:``) is not merged. Installed by conftest only when ``attnscope.ops`` lacks them.
Never used by attnscope itself; delete once the solver is on main."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


class RankDeficientError(ValueError):
    pass


@dataclass(frozen=True)
class WlsSolution:
    coef: torch.Tensor
    intercept: float
    r2: float
    rank: int
    rank_deficient: bool
    condition: float
    n_iter: int
    converged: bool


def _r2(y, pred, w):
    ybar = np.sum(w * y) / np.sum(w)
    ss = np.sum(w * (y - ybar) ** 2)
    return float(1 - np.sum(w * (y - pred) ** 2) / ss) if ss > 0 else 1.0


def weighted_least_squares(X, y, w=None, *, ridge=0.0, fit_intercept=True, fixed_intercept=None, coef_sum=None,
                           rcond=1e-10, allow_rank_deficient=False):
    X = X.double().numpy(); y = y.double().numpy()
    w = np.ones(len(y)) if w is None else w.double().numpy()
    p = X.shape[1]
    if coef_sum is not None:
        b0 = float(fixed_intercept)
        A = X[:, :-1] - X[:, -1:]
        t = y - b0 - coef_sum * X[:, -1]
        sw = np.sqrt(w)
        beta, *_ = np.linalg.lstsq(A * sw[:, None], t * sw, rcond=rcond)
        coef = np.append(beta, coef_sum - beta.sum())
        rank = int(np.linalg.matrix_rank(A * sw[:, None])) + 1
        return WlsSolution(torch.from_numpy(coef), b0, _r2(y, b0 + X @ coef, w), rank, rank < p, 1.0, 0, True)
    if fit_intercept:
        xm = (w[:, None] * X).sum(0) / w.sum(); ym = (w * y).sum() / w.sum()
    else:
        xm = np.zeros(p); ym = float(fixed_intercept or 0.0)
    Xc, yc = X - xm, y - ym
    sw = np.sqrt(w)
    A = Xc * sw[:, None]; t = yc * sw
    if ridge > 0:
        coef = np.linalg.solve(A.T @ A + ridge * np.eye(p), A.T @ t); rank = p
    else:
        rank = int(np.linalg.matrix_rank(A))
        if rank < p and not allow_rank_deficient:
            raise RankDeficientError(f"rank {rank} < {p}")
        coef, *_ = np.linalg.lstsq(A, t, rcond=None)
    b = float(ym - xm @ coef)
    return WlsSolution(torch.from_numpy(coef), b, _r2(y, X @ coef + b, w), rank, rank < p, 1.0, 0, True)


def weighted_lasso(X, y, w=None, *, alpha, fit_intercept=True, max_iter=10000, tol=1e-8):
    from sklearn.linear_model import Lasso

    m = Lasso(alpha=alpha, fit_intercept=fit_intercept, max_iter=max_iter, tol=tol)
    Xn = X.double().numpy(); yn = y.double().numpy(); wn = None if w is None else w.double().numpy()
    m.fit(Xn, yn, sample_weight=wn)
    pred = m.predict(Xn)
    return WlsSolution(torch.from_numpy(m.coef_.copy()), float(m.intercept_), _r2(yn, pred, np.ones(len(yn)) if wn is None else wn),
                       X.shape[1], False, 1.0, int(m.n_iter_), True)


def install() -> None:
    import attnscope.ops as ops

    if not hasattr(ops, "weighted_least_squares"):
        ops.weighted_least_squares = weighted_least_squares
        ops.weighted_lasso = weighted_lasso
        ops.RankDeficientError = RankDeficientError
