"""Result objects returned by attnscope's public functions."""

from .attention import AttentionResult
from .head_stats import HeadStats

__all__ = ["AttentionResult", "HeadStats"]
