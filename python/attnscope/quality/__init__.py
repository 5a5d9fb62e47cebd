"""Explanation quality: ``evaluate`` (faithfulness, robustness, plausibility and sanity of one explanation, in
``evaluation.py``), ``benchmark`` (every method × every metric over texts, in ``benchmarking.py``) and the metric
catalog (``list_metrics``, ``metrics.py``).

Names load on first use, so the metric catalog answers without importing torch (the command line checks metric
names before torch loads).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .metrics import list_metrics

_PUBLIC = {"evaluate": ".evaluation", "benchmark": ".benchmarking"}

if TYPE_CHECKING:  # pragma: no cover
    from .benchmarking import benchmark  # noqa: F401
    from .evaluation import evaluate  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'attnscope.quality' has no attribute {name!r}")


__all__ = ["benchmark", "evaluate", "list_metrics"]
