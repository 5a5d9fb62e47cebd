"""Attribution patching: the first-order estimate of activation patching from one clean forward, one corrupted
forward and one backward.

For an activation ``a`` at a site, patching it from the clean run changes the metric by about
``(a_clean - a_corrupted) · dM/da`` (the gradient taken on the corrupted run). Summed over the hidden axis per
position (``by="position"``), over positions (``by="layer"``) or over each head's dimensions and the positions
(``by="head"``, site ``head_out``). The estimate is linear: where the metric saturates (a softmax probability near 1,
a head whose attention pattern flips between the runs) it can be far off; ``result.compare(exact)`` says where.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..attribution.scope import scoped_model
from ..results.patching import PatchingResult
from .corruption import embedding_noise
from .pairs import example_inputs
from .runs import record_sites
from .sweep import Sweep

__all__ = ["attribution_patching"]


def _reduce(effect: Tensor, by: str) -> Tensor:
    """``[n, dim]`` (head_out: ``[n, heads, d_head]``) products -> the grid row of one layer."""
    if by == "head":
        return effect.sum((0, 2))
    per_position = effect.reshape(effect.shape[0], -1).sum(1)
    return per_position if by == "position" else per_position.sum().reshape(1)


def attribution_patching(
    model: nn.Module,
    clean: Any,
    corrupted: Any,
    *,
    metric: Any,
    sites: Sequence[str] | str = ("resid_pre",),
    by: str = "position",
    layers: Sequence[int] | int | None = None,
    tokenizer: Any = None,
) -> PatchingResult:
    """The gradient approximation of :func:`activation_patching` (same arguments, same grid).

    ``raw[site]`` is the corrupted metric plus the estimated change, so ``normalized`` reads like exact patching's;
    ``result.compare(exact)`` gives the correlation with an exact run and the largest disagreements.
    """
    sweep = Sweep.plan(model, clean, corrupted, metric=metric, sites=sites, by=by, layers=layers,
                       tokenizer=tokenizer)
    keys = sweep.keys
    with scoped_model(model):
        for b, pair in enumerate(sweep.pairs):
            a_clean: dict = {}
            with torch.no_grad(), record_sites(model, keys, a_clean):
                out = model(input_ids=pair.clean)
            bound = sweep.metric.bind(model, tokenizer, out, example_inputs(model, pair.clean))
            clean_value = float(bound(out, 1)[0])
            a_corr: dict = {}
            with torch.enable_grad(), record_sites(model, keys, a_corr, detach=False), \
                    embedding_noise(model, pair.noise, grad=True):
                value = bound(model(input_ids=pair.corrupted), 1)
                grads = torch.autograd.grad(value.sum(), [a_corr[k] for k in keys], allow_unused=True)
            sweep.add_example(bound, clean_value, float(value[0].detach()))
            for (s, l), g in zip(keys, grads):
                if g is None:  # the site does not reach the metric
                    g = torch.zeros_like(a_corr[(s, l)])
                diff = (a_clean[(s, l)] - a_corr[(s, l)].detach()).double()
                row = _reduce((diff * g.double())[0], by)
                sweep.raw[s][b, sweep.layers.index(l), : row.shape[0]] = row.cpu() + sweep.corrupted_values[-1]
    return sweep.result("attribution", 2 * len(sweep.pairs))
