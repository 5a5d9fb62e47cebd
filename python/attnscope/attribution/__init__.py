"""Attribution: the method catalog, one class per method (gradient/, perturbation/), generation attribution
(generation/), targets, baselines, ``attribute``, ``attribute_generation`` and ``attribute_dataset``.

Names load on first use, so the catalog (``list_methods``) answers without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .catalog import CATALOG, list_methods

# The method classes (IntegratedGradients, KernelShap, ...) come from the catalog: an entry is all a new method adds.
_CLASSES = {spec.implementation.split(":")[1]: spec for spec in CATALOG}

# public name -> submodule that defines it
_PUBLIC = {
    "attribute": ".api",
    "attribute_dataset": ".dataset",
    "attribute_generation": ".generation",
    "AttributionMethod": ".base",
    "Class": ".targets",
    "Continuation": ".targets",
    "Contrast": ".targets",
    "Custom": ".targets",
    "NextToken": ".targets",
    "Similarity": ".targets",
    "Target": ".targets",
    "TokenId": ".targets",
}

if TYPE_CHECKING:  # pragma: no cover
    from .api import attribute  # noqa: F401
    from .base import AttributionMethod  # noqa: F401
    from .dataset import attribute_dataset  # noqa: F401
    from .generation import attribute_generation  # noqa: F401
    from .targets import Class, Continuation, Contrast, Custom, NextToken, Similarity, Target, TokenId  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _CLASSES:
        value = _CLASSES[name].load()
    elif name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name], __name__), name)
    else:
        raise AttributeError(f"module 'attnscope.attribution' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC, *_CLASSES])


__all__ = ["list_methods", *_PUBLIC, *_CLASSES]
