"""Result objects returned by attnscope's public functions."""

from .attention import AttentionResult

__all__ = ["AttentionResult"]
