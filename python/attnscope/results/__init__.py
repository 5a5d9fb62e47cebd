"""Result objects returned by attnscope's public functions."""

from .activations import ActivationResult
from .attention import AttentionResult
from .attribution import AttributionResult
from .dataset import DatasetAttribution
from .embeddings import EmbeddingProjection, TokenNeighbors
from .dla import DLAResult
from .generation import GenerationAttribution
from .head_stats import HeadStats
from .lens import LensResult
from .neurons import NeuronStats
from .patching import PatchingComparison, PatchingResult
from .persist import load
from .quality import BenchmarkResult, EvaluationResult
from .weights import Weights

__all__ = ["ActivationResult", "AttentionResult", "AttributionResult", "BenchmarkResult", "DLAResult",
           "DatasetAttribution", "EmbeddingProjection", "EvaluationResult", "GenerationAttribution", "HeadStats",
           "LensResult", "NeuronStats", "PatchingComparison", "PatchingResult", "TokenNeighbors", "Weights", "load"]
