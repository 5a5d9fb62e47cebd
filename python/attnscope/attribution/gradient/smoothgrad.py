"""SmoothGrad (Smilkov et al. 2017): ``|dF/dx|`` over Gaussian noise, as Captum's NoiseTunnel over Saliency."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import GradientInputs, GradientMethod, MethodOutput, acc_dtype, evaluations
from ..seeds import per_point_generator
from .engine import GradientEngine

__all__ = ["SmoothGrad", "point_draws"]


class SmoothGrad(GradientMethod):
    name = "smoothgrad"

    def points(self, batch: int) -> int:
        return batch * self.options.n_steps

    def compute(self, data: GradientInputs) -> MethodOutput:
        o = self.options
        return smoothgrad(data.engine, data.x, o.n_steps, float(o.stdevs), o.nt_type, data.seed)


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
    dt = acc_dtype(x)
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
    return MethodOutput(raw, None, evaluations(b, n_samples))
