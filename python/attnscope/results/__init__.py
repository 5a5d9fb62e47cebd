"""Result objects returned by attnscope's public functions."""

from .attention import AttentionResult
from .head_stats import HeadStats
from .persist import load

__all__ = ["AttentionResult", "HeadStats", "load"]
