"""attnscope: explain transformer language models.

Exact attention capture, attribution and offline views for Hugging Face models, with a C++ core
(LibTorch + Eigen) behind ``torch.ops.attnscope``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import ops  # noqa: E402  (loads and checks the C++ extension)
from .api import capture_attention  # noqa: E402
from .capture import capture  # noqa: E402
from .config import config, show_config  # noqa: E402
from .results import AttentionResult, load  # noqa: E402

__all__ = ["AttentionResult", "__version__", "capture", "capture_attention", "config", "load", "ops", "show_config"]
