"""Gradient attribution methods on top of the :class:`~attnscope.attribution.engine.GradientEngine`.

Every method returns activations-shaped attributions ``raw`` ``[batch, seq, hidden]`` (in the engine's frame),
the completeness ``delta`` ``[batch]`` where the method has one, and the gradient evaluations per example.
Points are laid out and reduced chunk by chunk; nothing of size ``n_steps * batch * seq * hidden`` is built.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .. import ops
from .engine import GradientEngine, per_point_generator

NT_TYPES = ("smoothgrad", "smoothgrad_sq", "vargrad")
# Adaptive integrated gradients: Gauss-Legendre points per segment and segments to start with.
ADAPTIVE_ORDER = 4
ADAPTIVE_START_SEGMENTS = 2

__all__ = [
    "ADAPTIVE_ORDER",
    "NT_TYPES",
    "MethodOutput",
    "gradient_shap",
    "input_x_gradient",
    "integrated_gradients",
    "integrated_gradients_adaptive",
    "point_draws",
    "saliency",
    "smoothgrad",
]


@dataclass
class MethodOutput:
    raw: Tensor  # [batch, seq, hidden]
    delta: Tensor | None  # [batch]
    n_steps_used: Tensor  # [batch] long: gradient evaluations per example
    f_input: Tensor | None = None  # [batch]
    f_baseline: Tensor | None = None  # [batch]


def _acc_dtype(x: Tensor) -> torch.dtype:
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def _rows(engine: GradientEngine) -> Tensor:
    return torch.arange(engine.inputs.batch, device=engine.inputs.input_ids.device)


def _full(batch: int, n: int) -> Tensor:
    return torch.full((batch,), n, dtype=torch.long)


def saliency(engine: GradientEngine, x: Tensor) -> MethodOutput:
    """``|dF/dx|`` (Captum's Saliency with abs=True)."""
    raw = torch.zeros(x.shape, dtype=_acc_dtype(x), device=x.device)
    rows = _rows(engine)

    def consume(s, e, r, g, v):
        raw[s:e] = g.abs()

    engine.run(x.shape[0], lambda s, e: (x[s:e], rows[s:e]), consume)
    return MethodOutput(raw, None, _full(x.shape[0], 1))


def input_x_gradient(engine: GradientEngine, x: Tensor) -> MethodOutput:
    """``x * dF/dx``."""
    raw = torch.zeros(x.shape, dtype=_acc_dtype(x), device=x.device)
    rows = _rows(engine)

    def consume(s, e, r, g, v):
        raw[s:e] = x[s:e] * g

    engine.run(x.shape[0], lambda s, e: (x[s:e], rows[s:e]), consume)
    return MethodOutput(raw, None, _full(x.shape[0], 1))


def _endpoints(engine: GradientEngine, x: Tensor, base: Tensor, f_input: Tensor | None) -> tuple[Tensor, Tensor]:
    rows = _rows(engine)
    f_base = engine.values(base, rows)
    if f_input is None:
        f_input = engine.values(x, rows)
    return f_input, f_base


def integrated_gradients(
    engine: GradientEngine, x: Tensor, base: Tensor, n_steps: int, integration: str, f_input: Tensor | None
) -> MethodOutput:
    """``(x - x') * sum_i w_i dF/dx(x' + a_i (x - x'))`` with a fixed rule (Captum's layout: step-major points)."""
    alphas, weights = ops.quadrature_rule(integration, n_steps)
    b = x.shape[0]
    dt = _acc_dtype(x)
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
    return MethodOutput(raw, delta, _full(b, n_steps), f_input, f_base)


def integrated_gradients_adaptive(
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
    dt = _acc_dtype(x)
    diff = x - base
    f_input, f_base = _endpoints(engine, x, base, f_input)
    target_err = (tol * (f_input - f_base).abs()).tolist()
    order = max(1, min(ADAPTIVE_ORDER, max_steps))
    start = max(1, min(ADAPTIVE_START_SEGMENTS, max_steps // order))
    bounds = [torch.linspace(0, 1, start + 1, dtype=torch.float64) for _ in range(b)]
    f_at: list[dict[float, float]] = [{0.0: float(f_base[i]), 1.0: float(f_input[i])} for i in range(b)]
    segs: list[dict[tuple[float, float], list]] = [{} for _ in range(b)]  # (lo, hi) -> [G [seq, hidden], Q]
    used = [0] * b
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
            if total <= target_err[i] or max_new <= 0:
                continue
            bounds[i] = ops.refine_segments(bounds[i], torch.tensor(errs, dtype=torch.float64), target_err[i], max_new)
            still.append(i)
        active = still
    acc = torch.zeros(x.shape, dtype=dt, device=x.device)
    for i in range(b):
        bl = bounds[i].tolist()
        for lo, hi in zip(bl[:-1], bl[1:]):
            acc[i] += segs[i][(lo, hi)][0]
    raw = diff.to(dt) * acc
    delta = raw.sum(dim=(1, 2)) - (f_input - f_base).to(dt)
    return MethodOutput(raw, delta, torch.tensor(used, dtype=torch.long), f_input, f_base)


def point_draws(
    seed: int, example: int, sample: int, shape: tuple[int, ...], stdev: float, n_baselines: int = 1,
    dtype: torch.dtype = torch.float32,
) -> tuple[int, float, Tensor]:
    """The random draws of one (example, sample) point: baseline index, path coefficient in [0, 1), and Gaussian
    noise of ``shape`` with standard deviation ``stdev``. smoothgrad uses the noise, gradient_shap all three."""
    g = per_point_generator(seed, example, sample)
    k = int(torch.randint(n_baselines, (1,), generator=g)) if n_baselines > 1 else 0
    alpha = float(torch.rand((1,), generator=g, dtype=torch.float64))
    noise = torch.randn(shape, generator=g, dtype=torch.float32).mul_(stdev).to(dtype)
    return k, alpha, noise


def smoothgrad(engine: GradientEngine, x: Tensor, n_samples: int, stdev: float, nt_type: str, seed: int) -> MethodOutput:
    """Mean (smoothgrad), mean square (smoothgrad_sq) or variance (vargrad) of ``|dF/dx|`` at ``x + N(0, stdev^2)``,
    the noise on attributed positions (Captum's NoiseTunnel over Saliency, absolute stdev)."""
    b = x.shape[0]
    dt = _acc_dtype(x)
    total = torch.zeros(x.shape, dtype=dt, device=x.device)
    total_sq = torch.zeros(x.shape, dtype=dt, device=x.device)
    keep = engine.inputs.attributed.unsqueeze(-1).to(x.dtype)

    def make(s, e):
        idx = torch.arange(s, e)
        ex = (idx // n_samples).to(x.device)
        noise = torch.stack(
            [point_draws(seed, int(p) // n_samples, int(p) % n_samples, tuple(x.shape[1:]), stdev, 1, x.dtype)[2] for p in idx]
        ).to(x.device)
        return x[ex] + noise * keep[ex], ex

    def consume(s, e, r, g, v):
        a = g.abs().to(dt)
        total.index_add_(0, r, a)
        total_sq.index_add_(0, r, a * a)

    engine.run(n_samples * b, make, consume)
    mean, mean_sq = total / n_samples, total_sq / n_samples
    raw = {"smoothgrad": mean, "smoothgrad_sq": mean_sq, "vargrad": mean_sq - mean * mean}[nt_type]
    return MethodOutput(raw, None, _full(b, n_samples))


def gradient_shap(
    engine: GradientEngine, x: Tensor, dist: Tensor, n_samples: int, stdev: float, seed: int
) -> MethodOutput:
    """Expected gradients (Captum's GradientShap): mean over samples of ``(x + e - x'_k) * dF/dx`` at
    ``x'_k + a (x + e - x'_k)``, with ``k`` a random baseline of ``dist`` ``[n, seq, hidden]``, ``a ~ U[0, 1)`` and
    ``e ~ N(0, stdev^2)``."""
    b = x.shape[0]
    dt = _acc_dtype(x)
    raw = torch.zeros(x.shape, dtype=dt, device=x.device)
    keep = engine.inputs.attributed.unsqueeze(-1)
    n_base = dist.shape[0]
    made: dict[str, Tensor] = {}

    def make(s, e):
        exs, ks, als, noises = [], [], [], []
        for p in range(s, e):
            i, smp = p // n_samples, p % n_samples
            k, a, noise = point_draws(seed, i, smp, tuple(x.shape[1:]), stdev, n_base, x.dtype)
            exs.append(i)
            ks.append(k)
            als.append(a)
            noises.append(noise)
        ex = torch.tensor(exs, device=x.device)
        xn = x[ex] + torch.stack(noises).to(x.device) * keep[ex].to(x.dtype)
        bk = torch.where(keep[ex], dist[torch.tensor(ks, device=x.device)], x[ex])
        al = torch.tensor(als, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        made["d"] = xn - bk
        return al * xn + (1 - al) * bk, ex

    def consume(s, e, r, g, v):
        raw.index_add_(0, r, (made["d"] * g).to(dt))

    engine.run(n_samples * b, make, consume)
    return MethodOutput(raw / n_samples, None, _full(b, n_samples))
