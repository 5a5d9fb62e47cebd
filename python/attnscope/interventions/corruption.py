"""Corruptions that are not other token ids: Gaussian noise on the input embeddings (causal tracing's corruption).

``corrupted=EmbeddingNoise(0.1)`` runs the clean tokens with noise added to each token's embedding, of norm
``relative_norm`` times that embedding's norm, direction drawn from a seeded generator (the same noise for every
patched run of an example).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["EmbeddingNoise", "embedding_noise"]


@dataclass(frozen=True)
class EmbeddingNoise:
    """Noise of norm ``relative_norm * ||e||`` added to every token embedding ``e``; ``seed`` fixes it."""

    relative_norm: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.relative_norm, bool) or not isinstance(self.relative_norm, (int, float)) or \
                not self.relative_norm > 0:
            raise ValueError(f"relative_norm must be a positive number, got {self.relative_norm!r}")

    def sample(self, embeds: Tensor, example: int) -> Tensor:
        """Noise for ``embeds`` ``[1, n, d]`` of example ``example``."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + example)
        direction = torch.randn(embeds.shape, generator=gen, dtype=torch.float64)
        direction = direction / direction.norm(dim=-1, keepdim=True)
        scale = self.relative_norm * embeds.double().norm(dim=-1, keepdim=True).cpu()
        return (direction * scale).to(embeds.device, embeds.dtype)


@contextlib.contextmanager
def embedding_noise(model: nn.Module, noise: Tensor | None, start: int = 0, grad: bool = False) -> Iterator[None]:
    """Add ``noise[:, start:]`` to the input embeddings' output during the block (nothing when None); ``grad``
    makes the embeddings' output a leaf that requires grad (the start of the autograd graph)."""
    if noise is None and not grad:
        yield
        return

    def hook(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
        if noise is not None:
            output = output + noise[:, start:start + output.shape[1]]
        return output.detach().requires_grad_(True) if grad else output

    handle = model.get_input_embeddings().register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
