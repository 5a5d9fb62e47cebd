"""What differs between model families: attention modules and their stacks, the word embeddings."""

from __future__ import annotations

from .attention_modules import AttentionSlot, find_attention_modules
from .embeddings import find_word_embeddings, resolve_layer

__all__ = ["AttentionSlot", "find_attention_modules", "find_word_embeddings", "resolve_layer"]
