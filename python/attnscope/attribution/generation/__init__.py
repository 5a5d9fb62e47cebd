"""Generation attribution: every generated token attributed to the prompt and the earlier tokens in one pass."""

from .api import ENGINES, attribute_generation
from .attention import Attention
from .step_target import STEP_TARGETS

__all__ = ["ENGINES", "STEP_TARGETS", "Attention", "attribute_generation"]
