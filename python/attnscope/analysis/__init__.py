"""Analysis of captured attention: rollout and attention flow."""

from __future__ import annotations

from .flow import attention_flow
from .rollout import rollout

__all__ = ["attention_flow", "rollout"]
