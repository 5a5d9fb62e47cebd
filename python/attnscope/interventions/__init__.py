"""Interventions: ``intervene`` (ablation, setting, steering), activation patching with KV-prefix and lower-layer
reuse, attribution patching, and path patching between heads."""

from .attribution_patching import attribution_patching
from .corruption import EmbeddingNoise
from .patching import activation_patching
from .path_patching import path_patching
from .scope import Intervention, intervene

__all__ = ["EmbeddingNoise", "Intervention", "activation_patching", "attribution_patching", "intervene", "path_patching"]
