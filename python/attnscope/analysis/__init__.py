"""Analysis of attention: rollout, attention flow and head statistics."""

from __future__ import annotations

from .flow import attention_flow
from .head_stats import head_stats, repeated_sequences
from .rollout import rollout

__all__ = ["attention_flow", "head_stats", "repeated_sequences", "rollout"]
