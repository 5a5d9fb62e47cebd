"""Reading the model's own spaces: the logit lens, direct logit attribution, context mixing and the embeddings."""

from __future__ import annotations

from .context_mixing import context_mixing
from .dla import direct_logit_attribution
from .embeddings import Embeddings, embeddings
from .logit_lens import logit_lens

__all__ = ["Embeddings", "context_mixing", "direct_logit_attribution", "embeddings", "logit_lens"]
