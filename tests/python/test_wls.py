"""Weighted least squares and lasso (attnscope.ops) against numpy's lstsq, high-precision (mpmath) closed forms, a
numpy KKT solve and the lasso optimality conditions; plus input errors and the GIL being released during a solve."""

from __future__ import annotations

import threading
import time

import mpmath
import numpy as np
import pytest
import torch
from attnscope import ops
from attnscope.ops import RankDeficientError, weighted_lasso, weighted_least_squares


def _centred_scaled(X, y, w, fit_intercept=True):
    """The problem sklearn solves: weighted centring, then rows scaled by sqrt(w)."""
    xm = w @ X / w.sum() if fit_intercept else np.zeros(X.shape[1])
    ym = w @ y / w.sum() if fit_intercept else 0.0
    s = np.sqrt(w)
    return s[:, None] * (X - xm), s * (y - ym), xm, ym


def _exact_ridge(A, t, ridge):
    """(AᵀA + ridge I)⁻¹ Aᵀt in 60 significant digits: the exact solution for the float64 data A, t."""
    with mpmath.workdps(60):
        Am = mpmath.matrix(A.tolist())
        tm = mpmath.matrix(t.tolist())
        lhs = Am.T * Am + ridge * mpmath.eye(A.shape[1])
        return np.array(mpmath.lu_solve(lhs, Am.T * tm).tolist(), dtype=np.float64).ravel()


def _rel_err(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_matches_lstsq_on_weighted_problem(fit_intercept):
    rng = np.random.default_rng(0)
    X, y, w = rng.normal(size=(60, 7)), rng.normal(size=60), rng.uniform(0.1, 3.0, size=60)
    w[::7] = 0.0  # zero weights drop samples
    A, t, xm, ym = _centred_scaled(X, y, w, fit_intercept)
    ref = np.linalg.lstsq(A, t, rcond=None)[0]
    sol = weighted_least_squares(X, y, w, fit_intercept=fit_intercept)
    assert sol.coef.dtype == torch.float64 and sol.coef.shape == (7,)
    np.testing.assert_allclose(sol.coef.numpy(), ref, rtol=1e-12, atol=1e-14)
    assert sol.intercept == pytest.approx(ym - xm @ ref if fit_intercept else 0.0, abs=1e-13)
    pred = X @ ref + (ym - xm @ ref if fit_intercept else 0.0)
    ybar = w @ y / w.sum()
    assert sol.r2 == pytest.approx(1 - w @ (y - pred) ** 2 / (w @ (y - ybar) ** 2), abs=1e-12)
    assert sol.rank == 7 and not sol.rank_deficient and sol.n_iter == 0 and sol.converged
    assert sol.condition == pytest.approx(np.linalg.cond(A), rel=1e-9)


@pytest.mark.parametrize("degree", [12, 15])  # condition numbers ~7e8 and ~1e11 of the scaled design
def test_ill_conditioned_vandermonde_is_as_accurate_as_lapack(degree):
    rng = np.random.default_rng(degree)
    x = np.sort(rng.uniform(0.0, 1.0, 80))
    X = np.vander(x, degree + 1, increasing=True)[:, 1:]
    w = rng.uniform(0.5, 2.0, 80)
    c_true = rng.normal(size=degree)
    y = X @ c_true + 0.3 + 1e-3 * rng.normal(size=80)
    A, t, _, _ = _centred_scaled(X, y, w)
    kappa = np.linalg.cond(A)
    assert 1e8 <= kappa <= 1e12
    exact = _exact_ridge(A, t, 0)
    if kappa > 1e10:  # beyond the default cut-off rcond=1e-10 the smallest singular value counts as zero
        with pytest.raises(RankDeficientError, match=f"rank {degree - 1} but {degree}"):
            weighted_least_squares(X, y, w)
    sol = weighted_least_squares(X, y, w, rcond=-1)  # numpy's default cut-off, eps * max(n, p)
    lapack = np.linalg.lstsq(A, t, rcond=None)[0]
    # A backward-stable solver's forward error is O(kappa * eps); ours must be within a small factor of LAPACK's.
    err, err_lapack = _rel_err(sol.coef.numpy(), exact), _rel_err(lapack, exact)
    assert err <= 10 * max(err_lapack, kappa * 1e-16), (err, err_lapack, kappa)
    assert sol.condition == pytest.approx(kappa, rel=1e-6)
    assert sol.rank == degree and not sol.rank_deficient


@pytest.mark.parametrize("ridge", [1e-8, 1e-4, 1.0])
def test_ill_conditioned_ridge_matches_exact_closed_form(ridge):
    rng = np.random.default_rng(1)
    n = 100
    base = rng.normal(size=n)
    X = np.column_stack([base, base + 1e-6 * rng.normal(size=n), rng.normal(size=n), base * 2 + 1e-7 * rng.normal(size=n)])
    w = rng.uniform(0.2, 2.0, n)
    y = X @ np.array([1.0, -1.0, 0.5, 2.0]) + 0.1 * rng.normal(size=n) - 1.0
    A, t, xm, ym = _centred_scaled(X, y, w)
    assert np.linalg.cond(A) > 1e7
    exact = _exact_ridge(A, t, ridge)
    sol = weighted_least_squares(X, y, w, ridge=ridge)
    # The augmented system's condition sqrt((s_max² + ridge) / (s_min² + ridge)) bounds the forward error.
    s = np.linalg.svd(A, compute_uv=False)
    kappa_aug = np.sqrt((s[0] ** 2 + ridge) / (s[-1] ** 2 + ridge))
    assert _rel_err(sol.coef.numpy(), exact) <= 100 * kappa_aug * np.finfo(float).eps
    assert sol.intercept == pytest.approx(ym - xm @ exact, abs=1e-9 * (1 + abs(ym)))
    assert sol.rank == 4 and not sol.rank_deficient


def test_duplicated_column_raises_or_gives_minimum_norm():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(30, 3))
    X = np.column_stack([X, X[:, 1]])
    y, w = rng.normal(size=30), rng.uniform(0.5, 1.5, 30)
    with pytest.raises(RankDeficientError, match=r"rank 3 but 4 coefficients.*ridge > 0") as info:
        weighted_least_squares(X, y, w)
    assert isinstance(info.value, ValueError)
    sol = weighted_least_squares(X, y, w, allow_rank_deficient=True)
    A, t, _, _ = _centred_scaled(X, y, w)
    np.testing.assert_allclose(sol.coef.numpy(), np.linalg.lstsq(A, t, rcond=None)[0], rtol=1e-10, atol=1e-12)
    assert sol.rank == 3 and sol.rank_deficient
    assert sol.coef[1].item() == pytest.approx(sol.coef[3].item(), rel=1e-10)  # minimum norm splits evenly
    # Ridge makes the problem well posed: no error.
    assert weighted_least_squares(X, y, w, ridge=1e-3).rank == 4


def test_too_few_samples_are_rank_deficient():
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(10, 5)), rng.normal(size=10)
    w = np.zeros(10)
    w[:4] = 1.0  # 4 samples, centred: rank <= 3
    with pytest.raises(RankDeficientError, match="rank 3 but 5"):
        weighted_least_squares(X, y, w)


@pytest.mark.parametrize("fixed_intercept", [None, 0.7])
def test_coef_sum_constraint_matches_kkt_solve(fixed_intercept):
    rng = np.random.default_rng(4)
    n, p, total = 50, 6, 3.25
    X, y, w = rng.integers(0, 2, size=(n, p)).astype(float), rng.normal(size=n), rng.uniform(0.1, 2.0, n)
    if fixed_intercept is None:
        A, t, xm, ym = _centred_scaled(X, y, w)
    else:
        A, t = np.sqrt(w)[:, None] * X, np.sqrt(w) * (y - fixed_intercept)
    kkt = np.block([[A.T @ A, np.ones((p, 1))], [np.ones((1, p)), np.zeros((1, 1))]])
    ref = np.linalg.solve(kkt, np.concatenate([A.T @ t, [total]]))[:p]
    sol = weighted_least_squares(X, y, w, coef_sum=total, fixed_intercept=fixed_intercept)
    np.testing.assert_allclose(sol.coef.numpy(), ref, rtol=1e-10, atol=1e-12)
    assert abs(sol.coef.sum().item() - total) <= 1e-12
    assert sol.intercept == pytest.approx(fixed_intercept if fixed_intercept is not None else ym - xm @ ref, abs=1e-12)
    assert sol.rank == p - 1


def test_torch_float32_input_and_default_weights():
    rng = np.random.default_rng(5)
    X = torch.tensor(rng.normal(size=(40, 3)), dtype=torch.float32)
    y = X @ torch.tensor([1.0, 2.0, -1.0]) + 0.5
    sol = weighted_least_squares(X, y)
    ref = np.linalg.lstsq(np.column_stack([X.double().numpy(), np.ones(40)]), y.double().numpy(), rcond=None)[0]
    np.testing.assert_allclose(sol.coef.numpy(), ref[:3], rtol=1e-10)
    assert sol.intercept == pytest.approx(ref[3], abs=1e-10)
    assert sol.coef.dtype == torch.float64


def _lasso_kkt_violation(X, y, w, sol, alpha):
    """Largest violation of the lasso optimality conditions g_j = alpha sign(c_j) (c_j != 0), |g_j| <= alpha."""
    A, t, _, _ = _centred_scaled(X, y, w)
    coef = sol.coef.numpy()
    g = A.T @ (t - A @ coef) / w.sum()
    nz = coef != 0
    return max(np.max(np.abs(g[nz] - alpha * np.sign(coef[nz])), initial=0.0), np.max(np.abs(g[~nz]) - alpha, initial=0.0))


@pytest.mark.parametrize("alpha", [0.01, 0.1, 0.5])
def test_lasso_satisfies_optimality_conditions(alpha):
    rng = np.random.default_rng(6)
    X = rng.normal(size=(200, 12))
    X[:, 5] = X[:, 4] + 0.01 * rng.normal(size=200)  # correlated pair
    y = X[:, :4] @ np.array([2.0, -1.5, 1.0, 0.5]) + 0.1 * rng.normal(size=200) + 4.0
    w = rng.uniform(0.1, 3.0, 200)
    sol = weighted_lasso(X, y, w, alpha=alpha, tol=1e-12)
    assert sol.converged and 1 <= sol.n_iter < 10000
    assert _lasso_kkt_violation(X, y, w, sol, alpha) <= 1e-6 * alpha
    if alpha >= 0.1:
        assert np.count_nonzero(sol.coef.numpy()) < 12  # the penalty zeroes some coefficients
    xm, ym = w @ X / w.sum(), w @ y / w.sum()
    assert sol.intercept == pytest.approx(ym - xm @ sol.coef.numpy(), abs=1e-12)
    assert sol.rank == -1 and np.isnan(sol.condition)
    # sklearn's objective divides by sum(w) (it rescales w to sum to n): scaling all weights changes nothing.
    scaled = weighted_lasso(X, y, 10 * w, alpha=alpha, tol=1e-12)
    np.testing.assert_allclose(scaled.coef.numpy(), sol.coef.numpy(), atol=1e-8)


def test_lasso_reports_non_convergence():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(100, 20))
    X[:, 1] = X[:, 0] + 1e-4 * rng.normal(size=100)
    y = X[:, 0] + rng.normal(size=100)
    sol = weighted_lasso(X, y, alpha=1e-4, max_iter=2, tol=1e-14)
    assert sol.n_iter == 2 and not sol.converged


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((np.ones(5), np.ones(5)), {}, r"X must be 2-D \[n_samples, n_features\], got shape \(5,\)"),
        ((np.ones((5, 2)), np.ones(4)), {}, r"y must have one value per row of X: X has shape \(5, 2\), y has shape \(4,\)"),
        ((np.ones((5, 2)), np.ones(5), np.ones(6)), {}, r"w must have one weight per row of X.*\(6,\)"),
        ((np.ones((5, 2)), np.ones((5, 1))), {}, r"y must be 1-D"),
        ((np.ones((5, 2)), np.ones(5), np.array([1.0, 1, -2, 1, 1])), {}, r"w must be finite and >= 0, got w\[2\] = -2"),
        ((np.ones((5, 2)), np.ones(5), np.zeros(5)), {}, r"at least one positive weight"),
        ((np.array([[1.0, 2], [3, np.nan], [0, 1]]), np.ones(3)), {}, r"X must be finite, got X\[1, 1\] = nan"),
        ((np.ones((3, 2)), np.array([1.0, np.inf, 0])), {}, r"y must be finite, got y\[1\] = inf"),
        ((np.ones((3, 2)), np.ones(3)), {"ridge": -1.0}, r"ridge must be finite and >= 0"),
        ((np.ones((3, 0)), np.ones(3)), {"coef_sum": 1.0}, r"coef_sum needs at least one coefficient"),
    ],
)
def test_bad_input_names_the_argument(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        weighted_least_squares(*args, **kwargs)


def test_lasso_bad_input():
    with pytest.raises(ValueError, match=r"alpha must be finite and >= 0"):
        weighted_lasso(np.ones((3, 2)), np.ones(3), alpha=-1.0)
    with pytest.raises(ValueError, match=r"w must be finite and >= 0, got w\[0\] = nan"):
        weighted_lasso(np.ones((3, 2)), np.ones(3), np.array([np.nan, 1, 1]), alpha=0.1)


def test_solve_releases_the_gil():
    rng = np.random.default_rng(8)
    X = np.asfortranarray(rng.normal(size=(20000, 200)))
    y, w = rng.normal(size=20000), rng.uniform(0.5, 1.5, 20000)
    times: dict[str, float] = {}
    done = threading.Event()

    def solve():
        times["start"] = time.perf_counter()
        ops._C.weighted_least_squares(X, y, w)  # the raw binding: no Python work around the solve
        times["end"] = time.perf_counter()
        done.set()

    worker = threading.Thread(target=solve)
    worker.start()
    # The main thread counts and records its stamps; with the GIL held by the solve it could not run during it, so
    # its first stamp after the solve starts would come only after the solve ends (or a gap would span the solve).
    counter, first, last, max_gap = 0, None, None, 0.0
    while not done.is_set():
        now = time.perf_counter()
        counter += 1
        if "start" in times:
            first = now if first is None else first
            max_gap = max(max_gap, now - last) if last is not None else max_gap
            last = now
    worker.join()
    duration = times["end"] - times["start"]
    assert duration > 0.05, f"solve too short to measure ({duration:.3f} s)"
    assert first is not None and first <= times["start"] + 0.25 * duration, (first - times["start"], duration)
    assert max_gap < 0.5 * duration, (max_gap, duration)
    assert counter > 1000


def test_many_columns_match_lstsq_including_minimum_norm():
    # Above 128 columns the SVD of R is divide-and-conquer instead of Jacobi: same answers.
    rng = np.random.default_rng(9)
    X, y, w = rng.normal(size=(600, 150)), rng.normal(size=600), rng.uniform(0.1, 2.0, 600)
    A, t, _, _ = _centred_scaled(X, y, w)
    sol = weighted_least_squares(X, y, w)
    np.testing.assert_allclose(sol.coef.numpy(), np.linalg.lstsq(A, t, rcond=None)[0], rtol=1e-10, atol=1e-12)
    assert sol.condition == pytest.approx(np.linalg.cond(A), rel=1e-9)
    Xd = np.column_stack([X, X[:, :10]])  # 10 duplicated columns
    Ad, _, _, _ = _centred_scaled(Xd, y, w)
    sol = weighted_least_squares(Xd, y, w, allow_rank_deficient=True)
    assert sol.rank == 150 and sol.rank_deficient
    np.testing.assert_allclose(sol.coef.numpy(), np.linalg.lstsq(Ad, t, rcond=None)[0], rtol=1e-10, atol=1e-12)
