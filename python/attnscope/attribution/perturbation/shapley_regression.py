"""Shapley values by sampled Shapley-kernel regression, with standard errors: KernelSHAP as analysed by Covert &
Lee (2021, "Improving KernelSHAP"), their unbiased KernelSHAP, and Leverage SHAP (Musco & Witter 2024).

All three estimate the solution of the Shapley-kernel regression over coalitions ``z`` (``[n]`` bool, neither
empty nor full)::

    min_phi  sum_z  mu(|z|) (v(z) - v(0) - z . phi)^2     subject to  sum(phi) = v(1) - v(0)

whose solution over all ``2**n - 2`` coalitions is the Shapley values (``kernel_shap(mode="exact")``):

- ``kernel``: coalitions drawn i.i.d. from the Shapley kernel (size ``k`` with probability proportional to
  ``1 / (k (n - k))``, then a uniform subset of that size), fitted with equal weights and the constraint exact
  (Covert & Lee's KernelSHAP; Captum's scheme approximates the constraint with two rows weighted 1e6).
- ``unbiased``: the same draws; ``A = E[z z^T]`` is used in closed form and only ``b = E[z (v(z) - v(0))]`` is
  estimated, which makes the estimate unbiased (Covert & Lee's unbiased KernelSHAP).
- ``leverage``: each coalition is taken independently with probability ``p = min(1, c / C(n, |z|))`` (its leverage
  score in the regression: every size has the same total) and weighted ``mu(|z|) / p`` (Leverage SHAP: Poisson
  sampling without replacement); ``c`` makes the expected number of coalitions the budget, so sizes that fit
  whole (the ``n`` singletons and their complements first) are enumerated and carry no sampling error.

``paired``: each coalition comes with its complement (Covert & Lee's variance reduction; Leverage SHAP's default).

Standard errors by the delta method. With ``A = sum_z w(z) z z^T`` over the sampled rows and
``M = A^-1 - A^-1 1 1^T A^-1 / (1^T A^-1 1)`` (the constrained solution's sensitivity, ``M 1 = 0``), the estimate
moves by ``M`` times the sum over sampled units (a coalition, or a coalition and its complement) of
``psi_u = sum_{z in u} w(z) z (v(z) - v(0) - z . phi)``. I.i.d. units: ``Cov = M (U S_psi) M^T`` (``S_psi`` the
units' sample covariance, ``U`` their number). Poisson units: the Horvitz-Thompson variance
``Cov = M (sum_u (1 - p_u) psi_u psi_u^T) M^T``, 0 where whole sizes were enumerated. The unbiased estimator is
linear in ``b``: ``Cov = M (S_b / U) M^T`` with the exact ``A`` of one unit.
"""

from __future__ import annotations

import itertools
import math
import warnings

import torch
from torch import Tensor

from ... import ops

__all__ = ["RegressionEstimate", "kernel_size_probs", "random_subsets", "shapley_kernel_weight"]


def shapley_kernel_weight(n: int, k: Tensor) -> Tensor:
    """The Shapley kernel ``mu(z) = (n-1) / (C(n,|z|) |z| (n-|z|))`` for coalition sizes ``k`` (0 < k < n)."""
    k = k.double()
    log_binom = torch.lgamma(torch.tensor(n + 1.0)) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)
    return (n - 1) / (torch.exp(log_binom) * k * (n - k))


def random_subsets(n: int, sizes: Tensor, generator: torch.Generator) -> Tensor:
    """``[len(sizes), n]`` bool: for each size a uniform random subset of ``n`` features of that size."""
    ranks = torch.rand((sizes.shape[0], n), generator=generator, dtype=torch.float64).argsort(1).argsort(1)
    return ranks < sizes.unsqueeze(1)


def kernel_size_probs(n: int) -> Tensor:
    """``[n - 1]`` probability of coalition size ``k = 1..n-1`` under the Shapley kernel: ``∝ 1 / (k (n - k))``."""
    k = torch.arange(1, n, dtype=torch.float64)
    p = 1.0 / (k * (n - k))
    return p / p.sum()


def _projector(A: Tensor) -> Tensor:
    """``M = A^+ - A^+ 1 1^T A^+ / (1^T A^+ 1)``: how the sum-constrained solution of ``A phi = b`` moves with ``b``."""
    inv = torch.linalg.pinv(A, hermitian=True)
    a = inv.sum(1)
    return inv - torch.outer(a, a) / a.sum()


def _standard_errors(M: Tensor, S: Tensor) -> Tensor:
    return torch.diagonal(M @ S @ M.T).clamp_min(0).sqrt()


class RegressionEstimate:
    """One example's sampled Shapley regression, grown in rounds: :meth:`draw` the next coalitions, :meth:`update`
    with their values, :meth:`estimate` the values and their standard errors. ``used`` counts the coalitions,
    the full and the empty one included (``n_samples`` of ``kernel_shap``)."""

    def __init__(self, n: int, estimator: str, paired: bool, generator: torch.Generator) -> None:
        self.n, self.estimator, self.paired, self.g = n, estimator, paired, generator
        self.per_unit = 2 if paired else 1
        self.z = torch.zeros((0, n), dtype=torch.bool)  # sampled rows
        self.unit = torch.zeros(0, dtype=torch.long)  # the unit of each row
        self.v = torch.zeros(0, dtype=torch.float64)
        self.f_x: float | None = None
        self.f_b: float | None = None
        self._pending = 0
        if estimator == "leverage":
            self._classes = self._size_classes()
            self._p = [0.0] * len(self._classes)  # inclusion probability per class
            self._seen: list[set[bytes]] = [set() for _ in self._classes]
            self._unit_class: list[int] = []

    @property
    def used(self) -> int:
        return 2 + self.z.shape[0] + self._pending

    @property
    def exhausted(self) -> bool:
        """Every coalition is in the sample: the estimate is exact."""
        if self.n == 1:
            return True
        return self.estimator == "leverage" and all(p >= 1.0 for p in self._p)

    # --- sampling -------------------------------------------------------------------------------------------------
    def draw(self, total: int) -> Tensor:
        """Coalitions ``[k, n]`` to evaluate next so that about ``total`` have been used (the ends come first)."""
        ends = []
        if self.f_x is None:
            ends = [torch.ones((1, self.n), dtype=torch.bool), torch.zeros((1, self.n), dtype=torch.bool)]
        rows = torch.zeros((0, self.n), dtype=torch.bool)
        if self.n > 1 and total > self.used:
            rows = self._leverage_rows(total - 2) if self.estimator == "leverage" else self._kernel_rows(total - self.used)
        self._pending = rows.shape[0]
        self._rows = rows
        return torch.cat([*ends, rows])

    def update(self, values: Tensor) -> None:
        if self.f_x is None:
            self.f_x, self.f_b = float(values[0]), float(values[1])
            values = values[2:]
        self.z = torch.cat([self.z, self._rows])
        self.v = torch.cat([self.v, values.double()])
        self._pending = 0

    def _add_units(self, rows: Tensor) -> Tensor:
        """Rows ``[u, n]`` of new units -> with their complements when paired; records each row's unit."""
        first = int(self.unit.max()) + 1 if self.unit.numel() else 0
        ids = torch.arange(first, first + rows.shape[0])
        if self.paired:
            rows = torch.stack([rows, ~rows], 1).reshape(-1, self.n)
            ids = ids.repeat_interleave(2)
        self.unit = torch.cat([self.unit, ids])
        return rows

    def _kernel_rows(self, k: int) -> Tensor:
        units = max(1, k // self.per_unit)
        sizes = torch.multinomial(kernel_size_probs(self.n), units, replacement=True, generator=self.g) + 1
        return self._add_units(random_subsets(self.n, sizes, self.g))

    # --- leverage: Poisson sampling by size class ----------------------------------------------------------------
    def _size_classes(self) -> list[tuple[int, int, float]]:
        """``(size, population, units per unit of c)``: paired, a unit is a coalition of size ``k <= n/2`` and its
        complement (at ``k = n/2`` the pair is unordered: half as many units)."""
        n = self.n
        if not self.paired:
            return [(k, math.comb(n, k), 1.0) for k in range(1, n)]
        return [(k, math.comb(n, k) // (2 if 2 * k == n else 1), 0.5 if 2 * k == n else 1.0)
                for k in range(1, n // 2 + 1)]

    def _solve_c(self, rows: int) -> float:
        """``c`` whose expected number of rows is ``rows`` (``inf``: every coalition)."""
        def expected(c: float) -> float:
            return self.per_unit * sum(min(N, c * h) for _, N, h in self._classes)

        if rows >= 2**self.n - 2:
            return math.inf
        lo, hi = 0.0, 2.0 * max(N for _, N, _ in self._classes)
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if expected(mid) < rows else (lo, mid)
        return hi

    def _leverage_rows(self, rows: int) -> Tensor:
        c = self._solve_c(rows)
        new = []
        for j, (k, N, h) in enumerate(self._classes):
            p_new = 1.0 if c == math.inf else min(1.0, c * h / N)
            p_old = self._p[j]
            if p_new <= p_old:
                continue
            left = N - len(self._seen[j])
            q = 1.0 if p_new >= 1.0 else (p_new - p_old) / (1.0 - p_old)
            count = left if q >= 1.0 else self._binomial(left, q)
            self._p[j] = p_new
            if count:
                picked = self._pick(k, count, self._seen[j], left)
                self._unit_class += [j] * picked.shape[0]
                new.append(picked)
        if not new:
            return torch.zeros((0, self.n), dtype=torch.bool)
        return self._add_units(torch.cat(new))

    def _binomial(self, count: int, q: float) -> int:
        if count > 2**50:  # Poisson limit: torch's binomial takes float counts
            return int(torch.poisson(torch.tensor(count * q, dtype=torch.float64), generator=self.g))
        return int(torch.binomial(torch.tensor(float(count), dtype=torch.float64),
                                  torch.tensor(q, dtype=torch.float64), generator=self.g))

    def _canonical(self, rows: Tensor, k: int) -> Tensor:
        """At ``k = n/2`` (paired) a pair is named by its member that holds feature 0."""
        if self.paired and 2 * k == self.n:
            rows = torch.where(rows[:, :1], rows, ~rows)
        return rows

    def _pick(self, k: int, count: int, seen: set[bytes], left: int) -> Tensor:
        """``count`` distinct units of size ``k`` not in ``seen`` (uniformly among those left); adds them to it."""
        n = self.n
        if 2 * count >= left:  # most of what is left: enumerate it
            middle = self.paired and 2 * k == n
            combos = ((0, *c) for c in itertools.combinations(range(1, n), k - 1)) if middle else \
                itertools.combinations(range(n), k)
            rest = []
            for combo in combos:
                row = torch.zeros(n, dtype=torch.bool)
                row[list(combo)] = True
                if row.numpy().tobytes() not in seen:
                    rest.append(row)
            rows = torch.stack(rest)[torch.randperm(len(rest), generator=self.g)[:count]]
        else:
            got: list[Tensor] = []
            keys: set[bytes] = set()
            while len(got) < count:
                batch = self._canonical(random_subsets(n, torch.full((2 * count,), k), self.g), k)
                for row in batch:
                    key = row.numpy().tobytes()
                    if key not in seen and key not in keys:
                        keys.add(key)
                        got.append(row)
                        if len(got) == count:
                            break
            rows = torch.stack(got)
        seen.update(row.numpy().tobytes() for row in rows)
        return rows

    # --- estimation -----------------------------------------------------------------------------------------------
    def _row_weights(self) -> tuple[Tensor, Tensor | None]:
        """Regression weight of each row, and the inclusion probability of each unit (Poisson sampling)."""
        if self.estimator != "leverage":
            return torch.ones(self.z.shape[0], dtype=torch.float64), None
        p_unit = torch.tensor([self._p[j] for j in self._unit_class], dtype=torch.float64)
        return shapley_kernel_weight(self.n, self.z.sum(1)) / p_unit[self.unit], p_unit

    def estimate(self) -> tuple[Tensor, Tensor]:
        """Shapley values ``[n]`` and their standard errors ``[n]`` (float64; NaN errors from fewer than 2 i.i.d.
        units)."""
        return self.regression(self.v, self.f_b, self.f_x)

    def regression(self, v: Tensor, f_b: float, f_x: float) -> tuple[Tensor, Tensor]:
        """The estimate and its standard errors for the game whose values on the sampled rows are ``v`` (``[rows]``)
        and on the empty and full coalitions ``f_b`` and ``f_x``."""
        delta = f_x - f_b
        if self.n == 1:
            return torch.tensor([delta], dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
        z, y = self.z.double(), v - f_b
        units = int(self.unit.max()) + 1 if self.unit.numel() else 0
        if self.estimator == "unbiased":
            return self._unbiased(z, y, units, delta)
        w, p_unit = self._row_weights()
        sol = ops.weighted_least_squares(z, v, w, fit_intercept=False, fixed_intercept=f_b,
                                         coef_sum=delta, allow_rank_deficient=True)
        if sol.rank_deficient:
            warnings.warn(f"kernel_shap ({self.estimator}): the {self.z.shape[0]} sampled coalitions do not determine "
                          f"all {self.n} values (rank {sol.rank}); the minimum-norm solution is returned. Pass more "
                          "n_samples", stacklevel=4)
        phi = sol.coef.double()
        M = _projector(z.T @ (w.unsqueeze(1) * z))
        # HC3: each unit's residuals over one minus its leverage (the fit pulls the residuals of a unit with much
        # weight towards it, which would understate the spread at small samples).
        h = torch.zeros(units, dtype=torch.float64).index_add_(0, self.unit, w * ((z @ M) * z).sum(1))
        scale = 1.0 / (1.0 - h.clamp(max=1.0 - 1e-12))
        psi = torch.zeros((units, self.n), dtype=torch.float64).index_add_(
            0, self.unit, (w * (y - z @ phi)).unsqueeze(1) * z) * scale.unsqueeze(1)
        if p_unit is not None:  # Horvitz-Thompson: units drawn independently with probability p
            S = ((1.0 - p_unit).unsqueeze(1) * psi).T @ psi
        elif units >= 2:
            c = psi - psi.mean(0)
            S = c.T @ c * (units / (units - 1))
        else:
            return phi, torch.full((self.n,), float("nan"), dtype=torch.float64)
        return phi, _standard_errors(M, S)

    def _unbiased(self, z: Tensor, y: Tensor, units: int, delta: float) -> tuple[Tensor, Tensor]:
        n = self.n
        q, k = kernel_size_probs(n), torch.arange(1, n, dtype=torch.float64)
        diag, off = float((q * k / n).sum()), float((q * k * (k - 1) / (n * (n - 1))).sum())
        A = self.per_unit * (off * torch.ones((n, n), dtype=torch.float64) + (diag - off) * torch.eye(n, dtype=torch.float64))
        M = _projector(A)
        inv1 = torch.linalg.solve(A, torch.ones(n, dtype=torch.float64))
        psi = torch.zeros((units, n), dtype=torch.float64).index_add_(0, self.unit, y.unsqueeze(1) * z)
        phi = M @ psi.mean(0) + inv1 * (delta / float(inv1.sum()))
        if units < 2:
            return phi, torch.full((n,), float("nan"), dtype=torch.float64)
        c = psi - psi.mean(0)
        return phi, _standard_errors(M, c.T @ c / (units - 1) / units)
