"""GradientShap: expected gradients over random baselines and path points (Captum's GradientShap)."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import GradientInputs, GradientMethod, MethodOutput, acc_dtype, evaluations
from .engine import GradientEngine
from .smoothgrad import point_draws

__all__ = ["GradientShap"]


class GradientShap(GradientMethod):
    name = "gradient_shap"

    def points(self, batch: int) -> int:
        return batch * self.options.n_steps

    def compute(self, data: GradientInputs) -> MethodOutput:
        o = self.options
        return gradient_shap(data.engine, data.x, data.baselines(True), o.n_steps, float(o.stdevs), data.seed)


def gradient_shap(
    engine: GradientEngine, x: Tensor, dist: Tensor, n_samples: int, stdev: float, seed: int
) -> MethodOutput:
    """Expected gradients (Captum's GradientShap): mean over samples of ``(x + e - x'_k) * dF/dx`` at
    ``x'_k + a (x + e - x'_k)``, with ``k`` a random baseline of ``dist`` ``[n, seq, hidden]``, ``a ~ U[0, 1)`` and
    ``e ~ N(0, stdev^2)``."""
    b = x.shape[0]
    dt = acc_dtype(x)
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
    return MethodOutput(raw / n_samples, None, evaluations(b, n_samples))
