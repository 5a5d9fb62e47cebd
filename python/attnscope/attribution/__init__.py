"""Attribution: the engines, targets, baselines, methods, ``attribute`` and ``attribute_generation``."""

from __future__ import annotations

from .api import INTEGRATIONS, METHODS, attribute
from .dataset import attribute_dataset
from .generation import GENERATION_METHODS, attribute_generation
from .targets import Class, Continuation, Contrast, Custom, NextToken, Similarity, Target, TokenId

__all__ = [
    "GENERATION_METHODS",
    "INTEGRATIONS",
    "METHODS",
    "Class",
    "Continuation",
    "Contrast",
    "Custom",
    "NextToken",
    "Similarity",
    "Target",
    "TokenId",
    "attribute",
    "attribute_dataset",
    "attribute_generation",
]
