"""What differs between model families: where the word embeddings live (more to come: layer lists, GQA, ...)."""

from __future__ import annotations

from .embeddings import find_word_embeddings, resolve_layer

__all__ = ["find_word_embeddings", "resolve_layer"]
