"""A linear model whose faithfulness metrics have closed forms: an embedding bag with a linear head."""

from __future__ import annotations

import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput


class LinearBag(nn.Module):
    """``logits = W (sum of the embeddings of the attended tokens) + b``: removing token ``j`` (deleting it) lowers
    the logit of class ``c`` by exactly ``W_c . E[id_j]``; replacing it by ``r`` by ``W_c . (E[id_j] - E[r])``."""

    def __init__(self, vocab: int = 12, hidden: int = 6, classes: int = 3, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.embed = nn.Embedding(vocab, hidden)
        self.head = nn.Linear(hidden, classes)
        with torch.no_grad():
            self.embed.weight.copy_(torch.randn(vocab, hidden, generator=g))
            self.head.weight.copy_(torch.randn(classes, hidden, generator=g))
            self.head.bias.copy_(torch.randn(classes, generator=g))

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, **_):
        emb = self.embed(input_ids) if inputs_embeds is None else inputs_embeds
        mask = torch.ones(emb.shape[:2], dtype=emb.dtype) if attention_mask is None else attention_mask.to(emb.dtype)
        return SequenceClassifierOutput(logits=self.head((emb * mask.unsqueeze(-1)).sum(1)))

    def contributions(self, ids: torch.Tensor, cls: int, replacement: int | None) -> torch.Tensor:
        """What removing each token lowers the class-``cls`` logit by (deleting: ``replacement=None``)."""
        with torch.no_grad():
            e = self.embed.weight[ids]
            if replacement is not None:
                e = e - self.embed.weight[replacement]
            return (e @ self.head.weight[cls]).double()
