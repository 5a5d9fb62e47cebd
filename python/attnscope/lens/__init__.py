"""Output interpretability: the logit lens and direct logit attribution."""

from .dla import direct_logit_attribution
from .logit_lens import logit_lens

__all__ = ["direct_logit_attribution", "logit_lens"]
