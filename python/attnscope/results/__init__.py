"""Result objects returned by attnscope's public functions."""

from .attention import AttentionResult
from .persist import load

__all__ = ["AttentionResult", "load"]
