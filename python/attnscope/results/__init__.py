"""Result objects returned by attnscope's public functions."""

from .attention import AttentionResult
from .attribution import AttributionResult
from .dataset import DatasetAttribution
from .generation import GenerationAttribution
from .head_stats import HeadStats
from .persist import load
from .quality import BenchmarkResult, EvaluationResult

__all__ = ["AttentionResult", "AttributionResult", "BenchmarkResult", "EvaluationResult", "DatasetAttribution", "GenerationAttribution", "HeadStats", "load"]
