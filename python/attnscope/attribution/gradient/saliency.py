"""Saliency: ``|dF/dx|`` (Captum's Saliency with abs=True)."""

from __future__ import annotations

from torch import Tensor

from .base import GradientInputs, GradientMethod, MethodOutput

__all__ = ["Saliency"]


class Saliency(GradientMethod):
    name = "saliency"

    def compute(self, data: GradientInputs) -> MethodOutput:
        return self.at_input(data, lambda x, g: g.abs())

    @classmethod
    def explain_generation(cls, run, options) -> Tensor:
        return run.gradients(run.engine).abs().sum(-1)
