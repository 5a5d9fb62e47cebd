"""Models and corpora for the corpus tests: a classifier whose output is a known sparse linear function of token
presence (the surrogate's oracle), and random texts over the word tokenizer's vocabulary."""

from __future__ import annotations

import random

import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from attribution_models import WORDS, word_tokenizer

# logit(class 1) - logit(class 0) = BIAS + sum of TRUE_COEF[w] over the distinct words w present.
TRUE_COEF = {"cat": 2.0, "dog": -1.5, "red": 0.8, "ran": -0.6}
BIAS = 0.3


class PresenceModel(nn.Module):
    """Embeddings are one-hot rows; the max over the attended positions is the presence vector of the token ids."""

    def __init__(self) -> None:
        super().__init__()
        tok = word_tokenizer()
        vocab = len(tok)
        self.embed = nn.Embedding(vocab, vocab)
        self.head = nn.Linear(vocab, 2)
        with torch.no_grad():
            self.embed.weight.copy_(torch.eye(vocab))
            self.head.weight.zero_()
            self.head.bias.copy_(torch.tensor([0.0, BIAS]))
            for word, c in TRUE_COEF.items():
                self.head.weight[1, tok.convert_tokens_to_ids(word)] = c

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, **_):
        emb = self.embed(input_ids) if inputs_embeds is None else inputs_embeds
        mask = torch.ones(emb.shape[:2], dtype=emb.dtype) if attention_mask is None else attention_mask.to(emb.dtype)
        present = (emb * mask.unsqueeze(-1)).amax(1)
        return SequenceClassifierOutput(logits=self.head(present))


def true_output(text: str) -> float:
    return BIAS + sum(c for w, c in TRUE_COEF.items() if w in text.split())


def random_texts(n: int, seed: int = 0, lo: int = 3, hi: int = 12) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi))) for _ in range(n)]
