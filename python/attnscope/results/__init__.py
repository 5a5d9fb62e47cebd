"""Result objects returned by attnscope's public functions."""

from .activations import ActivationResult
from .attention import AttentionResult
from .attribution import AttributionResult
from .dataset import DatasetAttribution
from .generation import GenerationAttribution
from .head_stats import HeadStats
from .neurons import NeuronStats
from .persist import load
from .weights import Weights

__all__ = ["ActivationResult", "AttentionResult", "AttributionResult", "DatasetAttribution", "GenerationAttribution", "HeadStats", "NeuronStats", "Weights", "load"]
