"""Explanation quality: ``evaluate`` (faithfulness, robustness, plausibility and sanity of one explanation),
``benchmark`` (every method × every metric over texts) and the metric catalog (``list_metrics``).

Names load on first use, so ``list_metrics`` answers without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .metrics import list_metrics

_PUBLIC = {"evaluate": ".evaluate", "benchmark": ".benchmark"}

if TYPE_CHECKING:  # pragma: no cover
    from .benchmark import benchmark  # noqa: F401
    from .evaluate import evaluate  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'attnscope.quality' has no attribute {name!r}")


__all__ = ["benchmark", "evaluate", "list_metrics"]
