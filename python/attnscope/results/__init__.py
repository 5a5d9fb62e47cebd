"""Result objects returned by attnscope's public functions."""

from .attention import AttentionResult
from .attribution import AttributionResult
from .dataset import DatasetAttribution
from .embeddings import EmbeddingProjection, TokenNeighbors
from .dla import DLAResult
from .generation import GenerationAttribution
from .head_stats import HeadStats
from .lens import LensResult
from .persist import load

__all__ = ["AttentionResult", "AttributionResult", "DLAResult", "DatasetAttribution", "EmbeddingProjection",
           "GenerationAttribution", "HeadStats", "LensResult", "TokenNeighbors", "load"]
