"""Result objects returned by attnscope's public functions."""

from __future__ import annotations

from .attribution import AttributionResult

__all__ = ["AttributionResult"]
