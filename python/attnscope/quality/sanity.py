"""Sanity checks (Adebayo et al., 2018): does the explanation change when the model's weights or its training labels
are randomised? Each returns the Spearman rank correlation per example and per step; a faithful method gives low
|rho| (the explanation depends on what the model learnt)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = ["data_randomization", "layer_list", "model_randomization", "randomise_block", "spearman"]


def spearman(a: Tensor, b: Tensor) -> float:
    """Spearman's rho of two 1-D tensors (ranks by argsort; 0 when either is constant)."""
    ra = a.double().argsort().argsort().double()
    rb = b.double().argsort().argsort().double()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = float(ra.norm() * rb.norm())
    return float((ra @ rb) / denom) if denom > 0 else 0.0


def layer_list(model: nn.Module) -> list[nn.Module]:
    """The model's transformer blocks from the input side up: its longest ``nn.ModuleList``; for encoder-decoder
    models the encoder's blocks, then the decoder's (each stack's list holding most of its parameters: T5's blocks
    hold lists of their own)."""
    from ..adapters.seq2seq import is_encoder_decoder

    def lists(root: nn.Module) -> list[nn.ModuleList]:
        return [m for m in root.modules() if isinstance(m, nn.ModuleList) and len(m) > 0]

    if is_encoder_decoder(model) and hasattr(model, "get_encoder") and hasattr(model, "get_decoder"):
        stacks = [lists(model.get_encoder()), lists(model.get_decoder())]
        if all(stacks):
            heaviest = [max(s, key=lambda m: sum(p.numel() for p in m.parameters())) for s in stacks]
            return [block for stack in heaviest for block in stack]
    found = lists(model)
    if not found:
        raise ValueError(f"{type(model).__name__} has no list of layers (torch.nn.ModuleList) to randomise")
    return list(max(found, key=len))


def randomise_block(block: nn.Module, generator: torch.Generator) -> None:
    """Re-initialise a block: matrices ~ N(0, 0.02^2), biases 0, norm weights 1."""
    with torch.no_grad():
        for name, p in block.named_parameters():
            if p.dim() == 1:
                p.fill_(1.0 if "norm" in name.lower() and name.endswith("weight") else 0.0)
            else:
                p.copy_((torch.randn(p.shape, generator=generator) * 0.02).to(p.device, p.dtype))


def _rhos(reference: Tensor, scores: Tensor, mask: Tensor) -> list[float]:
    return [abs(spearman(reference[b][mask[b]], scores[b][mask[b]])) for b in range(scores.shape[0])]


def model_randomization(model: nn.Module, explain: Callable[[nn.Module], Tensor], reference: Tensor, mask: Tensor, *,
                        cascading: bool, seed: int) -> Tensor:
    """``[batch, layers]`` |Spearman rho| between ``reference`` scores and ``explain(randomised copy)``: blocks
    randomised from the top down, cumulatively (``cascading``) or one at a time (independent)."""
    generator = torch.Generator().manual_seed(seed)
    n_layers = len(layer_list(model))
    out = torch.zeros(reference.shape[0], n_layers, dtype=torch.float64)
    work = copy.deepcopy(model) if cascading else None
    for step, index in enumerate(reversed(range(n_layers))):
        if not cascading:
            work = copy.deepcopy(model)
        randomise_block(layer_list(work)[index], generator)
        out[:, step] = torch.tensor(_rhos(reference, explain(work).detach().cpu(), mask))
    return out


def data_randomization(model: nn.Module, explain: Callable[[nn.Module], Tensor], reference: Tensor, mask: Tensor,
                       forward_kwargs: dict[str, Tensor], labels: Tensor, *, steps: int, lr: float,
                       seed: int) -> Tensor:
    """``[batch, 1]`` |Spearman rho| between ``reference`` and the explanation of a copy fine-tuned for ``steps``
    Adam steps on the inputs with their labels permuted (the data-randomisation test, on the evaluated inputs)."""
    generator = torch.Generator().manual_seed(seed)
    shuffled = labels[torch.randperm(labels.shape[0], generator=generator)].to(labels.device)
    if labels.shape[0] > 1 and bool((shuffled == labels).all()):
        shuffled = labels.roll(1)
    work = copy.deepcopy(model).train()
    optimiser = torch.optim.Adam([p for p in work.parameters() if p.is_floating_point()], lr=lr)
    for p in work.parameters():
        p.requires_grad_(True)
    for _ in range(steps):
        logits = work(**forward_kwargs).logits
        if logits.dim() != 2:
            raise ValueError(f"data_randomization trains a classifier; the model's logits have shape "
                             f"{tuple(logits.shape)}, not [batch, classes]")
        loss = nn.functional.cross_entropy(logits.float(), shuffled)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    work.eval()
    return torch.tensor(_rhos(reference, explain(work).detach().cpu(), mask), dtype=torch.float64).unsqueeze(1)
