"""Analysis of attention: head statistics."""

from __future__ import annotations

from .head_stats import head_stats, repeated_sequences

__all__ = ["head_stats", "repeated_sequences"]
