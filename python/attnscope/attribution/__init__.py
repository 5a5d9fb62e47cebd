"""Gradient attribution: the engine, targets, baselines, methods, and ``attribute``."""

from __future__ import annotations

from .api import INTEGRATIONS, METHODS, attribute
from .dataset import attribute_dataset
from .targets import Class, Continuation, Contrast, Custom, NextToken, Similarity, Target, TokenId

__all__ = [
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
]
