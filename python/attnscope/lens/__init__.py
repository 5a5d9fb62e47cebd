"""Reading the model's own spaces: context mixing and the embedding spaces."""

from __future__ import annotations

from .context_mixing import context_mixing
from .embeddings import Embeddings, embeddings

__all__ = ["Embeddings", "context_mixing", "embeddings"]
