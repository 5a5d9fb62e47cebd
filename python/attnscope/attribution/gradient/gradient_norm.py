"""Gradient norm: ``||dF/dx_t||_2`` per token, the L2 aggregation of the input gradient that NLP saliency studies
often prefer to the L1 sum of ``saliency`` (e.g. Atanasova et al. 2020). Unsigned; ``raw`` is ``[batch, seq, 1]``.

This file and its catalog entry are the whole method (docs/architecture.md, "How to add a method")."""

from __future__ import annotations

from torch import Tensor

from .base import GradientInputs, GradientMethod, MethodOutput

__all__ = ["GradientNorm"]


class GradientNorm(GradientMethod):
    name = "gradient_norm"

    def compute(self, data: GradientInputs) -> MethodOutput:
        out = self.at_input(data, lambda x, g: g)
        out.raw = out.raw.norm(dim=-1, keepdim=True)
        return out

    @classmethod
    def explain_generation(cls, run, options) -> Tensor:
        return run.gradients(run.engine).norm(dim=-1)
