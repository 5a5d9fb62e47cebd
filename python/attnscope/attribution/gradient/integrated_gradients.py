"""Integrated gradients (Sundararajan et al. 2017) with a fixed quadrature rule or adaptive segments.

``(x - x') * integral_0^1 dF/dx(x' + a (x - x')) da``; the completeness delta ``sum(raw) - (F(x) - F(x'))`` is
reported per example.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from ... import ops
from .base import GradientInputs, GradientMethod, MethodOutput, acc_dtype, evaluations
from .engine import GradientEngine

# Adaptive integrated gradients: Gauss-Legendre points per segment and segments to start with.
ADAPTIVE_ORDER = 4
ADAPTIVE_START_SEGMENTS = 2

__all__ = ["ADAPTIVE_ORDER", "IntegratedGradients", "integrate_adaptive", "integrate_fixed"]


class IntegratedGradients(GradientMethod):
    name = "integrated_gradients"

    def check(self) -> None:
        o = self.options
        if o.integration == "riemann_trapezoid" and o.n_steps < 2:
            raise ValueError(f"integration='riemann_trapezoid' needs n_steps >= 2 (both end points), got {o.n_steps}")

    def points(self, batch: int) -> int:
        return batch * self.options.n_steps

    def compute(self, data: GradientInputs) -> MethodOutput:
        o = self.options
        base = data.baselines(False)
        if o.integration == "adaptive":
            return integrate_adaptive(data.engine, data.x, base, o.n_steps, float(o.completeness_tol), data.f_input)
        return integrate_fixed(data.engine, data.x, base, o.n_steps, o.integration, data.f_input)

    @classmethod
    def check_generation(cls, options) -> None:
        if options.integration == "riemann_trapezoid" and options.n_steps < 2:
            raise ValueError("integration='riemann_trapezoid' needs n_steps >= 2")

    @classmethod
    def explain_generation(cls, run, options) -> Tensor:
        return run.integrated_gradients(run.engine, options.n_steps, options.integration)


def _endpoints(engine: GradientEngine, x: Tensor, base: Tensor, f_input: Tensor | None) -> tuple[Tensor, Tensor]:
    rows = torch.arange(engine.inputs.batch, device=engine.inputs.input_ids.device)
    f_base = engine.values(base, rows)
    if f_input is None:
        f_input = engine.values(x, rows)
    return f_input, f_base


def integrate_fixed(
    engine: GradientEngine, x: Tensor, base: Tensor, n_steps: int, integration: str, f_input: Tensor | None
) -> MethodOutput:
    """``(x - x') * sum_i w_i dF/dx(x' + a_i (x - x'))`` with a fixed rule (Captum's layout: step-major points)."""
    alphas, weights = ops.quadrature_rule(integration, n_steps)
    b = x.shape[0]
    dt = acc_dtype(x)
    acc = torch.zeros(x.shape, dtype=dt, device=x.device)
    diff = x - base
    a_dev = alphas.to(x.device, x.dtype)
    w_dev = weights.to(x.device, dt)

    def make(s, e):
        idx = torch.arange(s, e, device=x.device)
        step, ex = idx // b, idx % b
        return base[ex] + a_dev[step].view(-1, 1, 1) * diff[ex], ex

    def consume(s, e, r, g, v):
        step = torch.arange(s, e, device=x.device) // b
        acc.index_add_(0, r, g.to(dt) * w_dev[step].view(-1, 1, 1))

    engine.run(n_steps * b, make, consume)
    raw = diff.to(dt) * acc
    f_input, f_base = _endpoints(engine, x, base, f_input)
    delta = raw.sum(dim=(1, 2)) - (f_input - f_base).to(dt)
    return MethodOutput(raw, delta, evaluations(b, n_steps), f_input, f_base)


def _warn_budget(short: list[tuple[int, float]], target_err: list[float], max_steps: int, tol: float) -> None:
    """Adaptive integration spent its budget before reaching its tolerance: say where and by how much."""
    worst = max(short, key=lambda s: s[1] / max(target_err[s[0]], 1e-300))
    warnings.warn(
        f"integration='adaptive' used its budget of n_steps={max_steps} gradient evaluations per example before "
        f"reaching completeness_tol={tol:g} for {len(short)} example(s) (e.g. example {worst[0]}: segment errors sum "
        f"to {worst[1]:.3g}, tolerance {target_err[worst[0]]:.3g}); raise n_steps or completeness_tol "
        "(res.delta holds the completeness error)", RuntimeWarning, stacklevel=2)


def integrate_adaptive(
    engine: GradientEngine, x: Tensor, base: Tensor, max_steps: int, tol: float, f_input: Tensor | None
) -> MethodOutput:
    """Integrated gradients with steps placed where the integrand changes.

    The path [0, 1] is cut into segments, each integrated with a few Gauss-Legendre points. The exact integral of
    the completeness integrand ``g(a) = dF/dx(x' + a (x - x')) . (x - x')`` over a segment is known from two
    forward passes, ``F(end) - F(start)``, so each segment's error is measured, not estimated. The segments with the
    largest errors are halved (C++ ``refine_segments``) until the errors sum to at most
    ``tol * |F(x) - F(x')|`` (which bounds ``|delta|``) or ``max_steps`` gradient evaluations per example are spent.
    """
    b = x.shape[0]
    dt = acc_dtype(x)
    diff = x - base
    f_input, f_base = _endpoints(engine, x, base, f_input)
    target_err = (tol * (f_input - f_base).abs()).tolist()
    order = max(1, min(ADAPTIVE_ORDER, max_steps))
    start = max(1, min(ADAPTIVE_START_SEGMENTS, max_steps // order))
    bounds = [torch.linspace(0, 1, start + 1, dtype=torch.float64) for _ in range(b)]
    f_at: list[dict[float, float]] = [{0.0: float(f_base[i]), 1.0: float(f_input[i])} for i in range(b)]
    segs: list[dict[tuple[float, float], list]] = [{} for _ in range(b)]  # (lo, hi) -> [G [seq, hidden], Q]
    used = [0] * b
    short: list[tuple[int, float]] = []  # (example, remaining error) where the budget ended first
    active = list(range(b))
    while active:
        # 1. F at the new bounds (forward only).
        f_pts = [(i, a) for i in active for a in bounds[i].tolist() if a not in f_at[i]]
        if f_pts:
            ex = torch.tensor([p[0] for p in f_pts], device=x.device)
            al = torch.tensor([p[1] for p in f_pts], device=x.device, dtype=x.dtype).view(-1, 1, 1)
            vals = engine.values(base[ex] + al * diff[ex], ex).tolist()
            for (i, a), v in zip(f_pts, vals):
                f_at[i][a] = v
        # 2. Gauss-Legendre points of the new segments (forward + backward).
        new = []
        for i in active:
            bl = bounds[i].tolist()
            for lo, hi in zip(bl[:-1], bl[1:]):
                if (lo, hi) not in segs[i]:
                    segs[i][(lo, hi)] = [torch.zeros(x.shape[1:], dtype=dt, device=x.device), 0.0]
                    new.append((i, lo, hi))
        if new:
            seg_bounds = torch.tensor([[lo, hi] for _, lo, hi in new], dtype=torch.float64)
            alphas, weights = ops.composite_gauss_legendre(torch.tensor([0.0, 1.0], dtype=torch.float64), order)
            # Map the rule on [0, 1] into every new segment: point k of segment j.
            width = (seg_bounds[:, 1] - seg_bounds[:, 0]).unsqueeze(1)
            pa = (seg_bounds[:, :1] + width * alphas.unsqueeze(0)).reshape(-1)
            pw = (width * weights.unsqueeze(0)).reshape(-1)
            pex = torch.tensor([i for i, _, _ in new for _ in range(order)], device=x.device)
            pseg = [j for j in range(len(new)) for _ in range(order)]
            pa_dev = pa.to(x.device, x.dtype)

            def make(s, e):
                ex = pex[s:e]
                return base[ex] + pa_dev[s:e].view(-1, 1, 1) * diff[ex], ex

            def consume(s, e, r, g, v):
                g = g.to(dt)
                proj = (g * diff[r].to(dt)).sum(dim=(1, 2))
                for k in range(s, e):
                    i, lo, hi = new[pseg[k]]
                    w = float(pw[k])
                    entry = segs[i][(lo, hi)]
                    entry[0].add_(g[k - s], alpha=w)
                    entry[1] += w * float(proj[k - s])

            engine.run(len(pa), make, consume)
            for i, _, _ in new:
                used[i] += order
        # 3. Errors per segment; refine where they are largest.
        still = []
        for i in active:
            bl = bounds[i].tolist()
            errs = [segs[i][(lo, hi)][1] - (f_at[i][hi] - f_at[i][lo]) for lo, hi in zip(bl[:-1], bl[1:])]
            total = sum(abs(e) for e in errs)
            max_new = (max_steps - used[i]) // (2 * order)
            if total <= target_err[i]:
                continue
            if max_new <= 0:
                short.append((i, total))
                continue
            bounds[i] = ops.refine_segments(bounds[i], torch.tensor(errs, dtype=torch.float64), target_err[i], max_new)
            still.append(i)
        active = still
    if short:
        _warn_budget(short, target_err, max_steps, tol)
    acc = torch.zeros(x.shape, dtype=dt, device=x.device)
    for i in range(b):
        bl = bounds[i].tolist()
        for lo, hi in zip(bl[:-1], bl[1:]):
            acc[i] += segs[i][(lo, hi)][0]
    raw = diff.to(dt) * acc
    delta = raw.sum(dim=(1, 2)) - (f_input - f_base).to(dt)
    return MethodOutput(raw, delta, torch.tensor(used, dtype=torch.long), f_input, f_base)
