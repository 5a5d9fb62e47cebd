"""Attention capture engine: an AttentionInterface function installed for the scope of a call."""

from .session import capture

__all__ = ["capture"]
