"""What a patching run measures: one scalar per example, from the model's outputs.

``metric=`` takes
* ``("logit_diff", a, b)``: ``logit(a) - logit(b)`` at the last position (tokens by name with a tokenizer, or ids);
* a target of ``attribute``'s vocabulary (``TokenId``, ``NextToken``, ``Contrast``, ``Class``, an int, ...), read on
  the outputs as ``attribute`` reads it (``NextToken`` is fixed to the clean run's prediction);
* a callable ``outputs -> Tensor[rows]`` (one value per row of the batch it is given).
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..attribution.targets import Continuation, Contrast, Target, resolve_target
from ..inputs import ModelInputs

__all__ = ["Metric", "resolve_metric"]


def _check(values: Any, rows: int, what: str) -> Tensor:
    if isinstance(values, Tensor) and values.dim() == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if not isinstance(values, Tensor) or values.shape != (rows,):
        shape = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
        raise ValueError(
            f"the metric {what} gave {shape} for a batch of {rows} rows: it must give one scalar per example, "
            f"Tensor[{rows}] (reduce over positions and the vocabulary inside the metric, e.g. "
            "lambda out: out.logits[:, -1, a] - out.logits[:, -1, b])")
    return values


class Metric:
    """A resolved metric, bound to one example's clean run."""

    last_only = False  # True: reads only the last position's logits

    def bind(self, model: nn.Module, tokenizer: Any, outputs: Any, inputs: ModelInputs) -> Metric:
        return self

    def __call__(self, outputs: Any, rows: int) -> Tensor:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


class _TargetMetric(Metric):
    def __init__(self, target: Target) -> None:
        self.target = target

    def bind(self, model, tokenizer, outputs, inputs):
        bound = _TargetMetric(copy.deepcopy(self.target))
        bound.target.prepare(model, tokenizer)
        bound.target.bind(outputs, inputs, model, tokenizer)
        bound.last_only = bound.target.reads_last_position()
        return bound

    def __call__(self, outputs, rows):
        logits = getattr(outputs, "logits", None)
        width = logits.shape[1] if isinstance(logits, Tensor) and logits.dim() == 3 else 1
        device = logits.device if isinstance(logits, Tensor) else None
        mask = torch.ones((rows, width), dtype=torch.long, device=device)
        index = torch.zeros(rows, dtype=torch.long, device=device)
        return _check(self.target(outputs, index, mask), rows, self.describe())

    def describe(self):
        try:
            return self.target.describe()
        except AttributeError:  # not bound yet (describe() reads what bind() resolved)
            return repr(self.target)


class _CallableMetric(Metric):
    def __init__(self, fn: Callable[[Any], Tensor]) -> None:
        self.fn = fn

    def __call__(self, outputs, rows):
        return _check(self.fn(outputs), rows, self.describe())

    def describe(self):
        return f"callable {getattr(self.fn, '__name__', repr(self.fn))}"


def resolve_metric(metric: Any) -> Metric:
    """Turn the user's ``metric=`` into a :class:`Metric`."""
    if isinstance(metric, tuple) and metric and metric[0] == "logit_diff":
        if len(metric) != 3:
            raise ValueError(f"a logit difference is ('logit_diff', a, b) with two tokens, got {metric!r}")
        return _TargetMetric(Contrast(metric[1], metric[2]))
    if metric is None or isinstance(metric, str):
        raise ValueError(
            f"metric={metric!r} is not a metric: pass ('logit_diff', a, b) with two tokens, a target such as "
            "TokenId(t) or NextToken(), or a callable outputs -> Tensor[batch]")
    if isinstance(metric, Target) or (not callable(metric)):
        target = resolve_target(metric)
        if isinstance(target, Continuation):
            raise ValueError("a Continuation target changes the input's length; patching needs clean and corrupted "
                             "runs of one length: append the continuation to both inputs and use a callable metric")
        return _TargetMetric(target)
    return _CallableMetric(metric)
