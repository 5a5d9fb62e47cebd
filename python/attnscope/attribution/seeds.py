"""Random streams keyed by (seed, example, sample): draws do not depend on chunking, batch layout or other examples."""

from __future__ import annotations

import torch

__all__ = ["draw_seed", "example_generator", "per_point_generator"]


def per_point_generator(seed: int, example: int, sample: int) -> torch.Generator:
    """The random stream of one point (example, sample) of the gradient methods."""
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + example * 10_007 + sample) % (2**63 - 1))
    return g


def example_generator(seed: int, example: int) -> torch.Generator:
    """The random stream of example ``example`` (its index in the batch) of the perturbation methods."""
    return per_point_generator(seed, example, 0)


def draw_seed() -> int:
    """A fresh seed when the user gave none (from torch's global generator, so ``torch.manual_seed`` fixes it)."""
    return int(torch.randint(0, 2**62, (1,)).item())
