"""attnscope: explain transformer language models.

Exact attention capture, attribution and offline views for Hugging Face models, with a C++ core
(LibTorch + Eigen) behind ``torch.ops.attnscope``.

The public names load on first use, so ``attnscope --help`` and usage errors of the command line answer without
importing torch. The torch version check runs at import time all the same (it reads the installed version).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version_check import check_torch_version

__version__ = "0.1.0"

check_torch_version()

# public name -> module that defines it
_PUBLIC = {
    "AttentionResult": ".results",
    "load": ".results",
    "capture": ".capturing",
    "CaptureConsumer": ".capturing",
    "AttentionEvent": ".capturing",
    "capture_attention": ".api",
    "config": ".environment",
    "rollout": ".analysis",
    "head_stats": ".analysis",
    "attribute": ".attribution",
    "attribute_dataset": ".attribution",
    "attribute_generation": ".attribution",
    "list_methods": ".attribution",
    "GenerationAttribution": ".results",
    "DatasetAttribution": ".results",
    "AttributionResult": ".results",
    "HeadStats": ".results",
    "attention_flow": ".analysis",
    "show_config": ".environment",
    "context_mixing": ".lens",
    "embeddings": ".lens",
    "Embeddings": ".lens",
    "TokenNeighbors": ".results",
    "EmbeddingProjection": ".results",
    "logit_lens": ".lens",
    "direct_logit_attribution": ".lens",
    "LensResult": ".results",
    "DLAResult": ".results",
    "capture_activations": ".activations",
    "neuron_stats": ".activations",
    "weights": ".activations",
    "ActivationResult": ".results",
    "NeuronStats": ".results",
    "Weights": ".results",
    "evaluate": ".quality",
    "benchmark": ".quality",
    "list_metrics": ".quality",
    "EvaluationResult": ".results",
    "BenchmarkResult": ".results",
    "intervene": ".interventions",
    "activation_patching": ".interventions",
    "attribution_patching": ".interventions",
    "path_patching": ".interventions",
    "PatchingResult": ".results",
}
_SUBMODULES = {"ops", "viz", "analysis", "attribution", "organisms", "testing", "results", "capturing", "adapters",
               "lens", "activations", "quality", "inputs", "interventions"}

if TYPE_CHECKING:  # pragma: no cover
    from . import ops, viz  # noqa: F401
    from .api import capture_attention  # noqa: F401
    from .capturing import AttentionEvent, CaptureConsumer, capture  # noqa: F401
    from .environment import config, show_config  # noqa: F401
    from .analysis import attention_flow, rollout  # noqa: F401
    from . import analysis, organisms  # noqa: F401
    from .analysis import head_stats  # noqa: F401
    from .attribution import attribute, attribute_dataset, attribute_generation, list_methods  # noqa: F401
    from .quality import benchmark, evaluate, list_metrics  # noqa: F401
    from .results import AttentionResult, AttributionResult, GenerationAttribution, HeadStats, load  # noqa: F401
    from .lens import Embeddings, context_mixing, embeddings  # noqa: F401
    from .results import EmbeddingProjection, TokenNeighbors  # noqa: F401
    from .lens import direct_logit_attribution, logit_lens  # noqa: F401
    from .results import DLAResult, LensResult  # noqa: F401
    from .activations import capture_activations, neuron_stats, weights  # noqa: F401
    from .results import ActivationResult, NeuronStats, Weights  # noqa: F401
    from .results import BenchmarkResult, EvaluationResult  # noqa: F401
    from .interventions import activation_patching, attribution_patching, intervene, path_patching  # noqa: F401
    from .results import PatchingResult  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name], __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'attnscope' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC, *_SUBMODULES])


__all__ = ["__version__", *_PUBLIC]
