"""Attention capture engine: an AttentionInterface function installed for the scope of a call, and its public
consumer interface (:class:`CaptureConsumer`, :class:`AttentionEvent`) for code that sees every attention call."""

from .consumers import AttentionEvent, CaptureConsumer
from .editors import AttentionEditor
from .session import capture

__all__ = ["AttentionEditor", "AttentionEvent", "CaptureConsumer", "capture"]
