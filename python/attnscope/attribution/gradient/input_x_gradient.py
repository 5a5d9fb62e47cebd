"""Input x gradient: ``x * dF/dx``."""

from __future__ import annotations

from torch import Tensor

from .base import GradientInputs, GradientMethod, MethodOutput

__all__ = ["InputXGradient"]


class InputXGradient(GradientMethod):
    name = "input_x_gradient"

    def compute(self, data: GradientInputs) -> MethodOutput:
        return self.at_input(data, lambda x, g: x * g)

    @classmethod
    def explain_generation(cls, run, options) -> Tensor:
        return (run.gradients(run.engine) * run.x).sum(-1)
