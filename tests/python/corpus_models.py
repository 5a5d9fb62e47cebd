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


def reviews(n: int, seed: int = 0) -> tuple[list[str], list[int]]:
    """Synthetic reviews: filler words and one sentiment word of the label's side; a third also carry one of the
    other side (hard cases)."""
    rng = random.Random(seed)
    pos, neg = ["great", "wonderful", "loved", "fun", "superb"], ["awful", "boring", "hated", "dull", "poor"]
    filler = "the a movie film plot story acting music was is really very quite and but".split()
    texts, labels = [], []
    for _ in range(n):
        label = rng.randrange(2)
        words = rng.sample(filler, 5) + [rng.choice(pos if label else neg)]
        if rng.random() < 0.3:
            words.append(rng.choice(neg if label else pos))
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


def minilm_sentiment(path: str, n_fit: int = 80):
    """MiniLM with a two-class head fitted in closed form (ridge on the pooled output) to ``reviews``' labels."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    clf = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1}).eval()
    texts, labels = reviews(n_fit, seed=1)
    with torch.no_grad():
        pooled = clf.bert(**tok(texts, padding=True, return_tensors="pt")).pooler_output.double()
        y = torch.tensor(labels, dtype=torch.double) * 2 - 1
        X = torch.cat([pooled, torch.ones(n_fit, 1, dtype=torch.double)], 1)
        w = torch.linalg.solve(X.T @ X + 1e-2 * torch.eye(X.shape[1], dtype=torch.double), X.T @ y)
        clf.classifier.weight.copy_(torch.stack([-w[:-1], w[:-1]]).float() / 2)
        clf.classifier.bias.copy_(torch.stack([-w[-1], w[-1]]).float() / 2)
    return clf, tok


def block_imports(monkeypatch, package: str) -> None:
    """Make ``import package`` (and its submodules) fail for the rest of the test, as if it were not installed."""
    import builtins
    import sys

    real_import = builtins.__import__

    def blocked(name, *args, **kwargs):
        if name.split(".")[0] == package:
            raise ImportError(f"{package} is blocked by the test")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", blocked)
    for mod in [m for m in sys.modules if m.split(".")[0] == package]:
        monkeypatch.delitem(sys.modules, mod)
