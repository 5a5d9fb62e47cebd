"""Explanation quality: ``evaluate`` (faithfulness, robustness, plausibility and sanity of one explanation),
``benchmark`` (every method × every metric over texts) and the metric catalog (``list_metrics``, torch-free in
:mod:`attnscope.quality.metrics`)."""

from __future__ import annotations

from .benchmark import benchmark
from .evaluate import evaluate
from .metrics import list_metrics

__all__ = ["benchmark", "evaluate", "list_metrics"]
