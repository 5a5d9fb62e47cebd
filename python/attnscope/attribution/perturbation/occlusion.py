"""Occlusion (Zeiler & Fergus 2014, Captum's Occlusion) on the feature axis, with a sliding window."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import PerturbationMethod, PerturbationOutput
from .engine import PerturbationEngine, n_windows, resolve_replacement

__all__ = ["Occlusion", "occlusion"]


class Occlusion(PerturbationMethod):
    name = "occlusion"

    def check(self) -> None:
        o = self.options
        if o.stride > o.window:
            raise ValueError(
                f"stride={o.stride} is larger than window={o.window}: features between windows would never be "
                "occluded; pass stride <= window"
            )

    def points(self, n_features: int) -> int:
        return n_features

    def compute(self, engine: PerturbationEngine, seed: int) -> PerturbationOutput:
        return occlusion(engine, self.options.window, self.options.stride)

    @classmethod
    def explain_generation(cls, run, options) -> Tensor:
        replacement = resolve_replacement(options.replacement_token, run.tokenizer, run.model, run.vocab,
                                          "replacement_token")
        return run.occlusion(replacement, run.step_scores)


def occlusion(engine: PerturbationEngine, window: int, stride: int) -> PerturbationOutput:
    """Captum ``Occlusion`` on the feature axis: window ``k`` hides features ``[k*stride, k*stride + window)`` (the
    last one cut at the end); a feature's score is the mean of ``f(x) - f(x without the window)`` over the windows
    that cover it."""
    sets = []
    for i, n in enumerate(engine.n_features):
        if window > n:
            raise ValueError(f"window={window} is wider than example {i}'s {n} features; pass window <= {n}")
        w_count = n_windows(n, window, stride)
        z = torch.ones((w_count, n), dtype=torch.bool)
        for k in range(w_count):
            z[k, k * stride : k * stride + window] = False
        sets.append(z)
    values = engine.evaluate(sets)
    scores = []
    for i, (z, v) in enumerate(zip(sets, values)):
        hidden = (~z).double()  # [windows, n]
        diff = engine.f_input[i] - v  # [windows]
        scores.append((diff.unsqueeze(1) * hidden).sum(0) / hidden.sum(0))
    return PerturbationOutput(scores)
