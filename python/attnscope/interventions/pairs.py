"""Clean and corrupted inputs as pairs of unpadded examples of equal length, and the sweep's shared checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..activations.capture import normalize_layers
from ..adapters.sites import num_layers
from ..inputs import ModelInputs, model_device, model_inputs, token_strings
from .corruption import EmbeddingNoise
from .edits import check_site

__all__ = ["BY", "Pair", "check_sites", "example_inputs", "paired_inputs", "sweep_layers", "tokens_of"]

BY = ("position", "layer", "head")


@dataclass
class Pair:
    """One example: clean and corrupted token ids ``[1, n]`` (no padding) and the corrupted run's embedding noise
    ``[1, n, d]`` (None unless ``corrupted`` is an :class:`EmbeddingNoise`)."""

    clean: Tensor
    corrupted: Tensor
    noise: Tensor | None = None

    @property
    def n(self) -> int:
        return int(self.clean.shape[1])


def paired_inputs(model: nn.Module, clean: Any, corrupted: Any, tokenizer: Any) -> list[Pair]:
    """Per example, the clean and corrupted token ids without padding; a ValueError when a pair's lengths differ
    (patching copies activations position by position). ``corrupted`` may be an :class:`EmbeddingNoise`."""
    device = model_device(model)
    a = model_inputs(clean, tokenizer=tokenizer, model=model, device=device, what="clean")
    if isinstance(corrupted, EmbeddingNoise):
        rows = [a.input_ids[i][a.attention_mask[i].bool()][None] for i in range(a.batch)]
        with torch.no_grad():
            return [Pair(x, x, corrupted.sample(model.get_input_embeddings()(x), i)) for i, x in enumerate(rows)]
    b = model_inputs(corrupted, tokenizer=tokenizer, model=model, device=device, what="corrupted")
    if a.batch != b.batch:
        raise ValueError(f"clean has {a.batch} examples and corrupted has {b.batch}: pass one corrupted input per "
                         "clean input")
    pairs = []
    for i in range(a.batch):
        x = a.input_ids[i][a.attention_mask[i].bool()]
        y = b.input_ids[i][b.attention_mask[i].bool()]
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"clean example {i} has {x.shape[0]} tokens and corrupted example {i} has {y.shape[0]}: patching "
                "copies activations position by position, so each pair must have the same number of tokens. Align "
                "them: pick a corrupted text that tokenizes to as many tokens (compare len(tokenizer(text)"
                "['input_ids'])), e.g. swap a name for another single-token name, or pad the shorter one with a "
                "neutral token")
        pairs.append(Pair(x[None], y[None]))
    return pairs


def example_inputs(model: nn.Module, ids: Tensor) -> ModelInputs:
    return model_inputs(ids, model=model)


def tokens_of(tokenizer: Any, ids: Tensor) -> list[str]:
    row = ids.reshape(-1).tolist()
    return token_strings(tokenizer, row)


def check_sites(sites: Sequence[str] | str, by: str) -> list[str]:
    if by not in BY:
        raise ValueError(f"unknown by={by!r}: use one of {', '.join(BY)}")
    slist = [sites] if isinstance(sites, str) else list(sites)
    if not slist:
        raise ValueError("sites is empty: name at least one site, e.g. sites=('resid_pre',)")
    for site in slist:
        check_site(site)
    if by == "head" and slist != ["head_out"]:
        raise ValueError(f"by='head' patches each head's output: use sites=('head_out',), got {tuple(slist)}")
    return slist


def sweep_layers(model: nn.Module, layers: Sequence[int] | int | None) -> list[int]:
    return normalize_layers(layers, num_layers(model))
