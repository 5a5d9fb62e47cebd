"""Activations inside the model: capture at named sites, streaming neuron statistics, weights read as circuits."""

from .capture import ActivationCapture, capture_activations
from .neuron_stats import neuron_stats
from .weights import weights

__all__ = ["ActivationCapture", "capture_activations", "neuron_stats", "weights"]
