"""Result objects returned by attnscope's public functions."""

from .attention import AttentionResult
from .attribution import AttributionResult
from .dataset import DatasetAttribution
from .embeddings import EmbeddingProjection, TokenNeighbors
from .generation import GenerationAttribution
from .head_stats import HeadStats
from .persist import load

__all__ = ["AttentionResult", "AttributionResult", "DatasetAttribution", "EmbeddingProjection",
           "GenerationAttribution", "HeadStats", "TokenNeighbors", "load"]
