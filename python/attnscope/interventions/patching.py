"""Exact activation patching: every (layer, position) or (layer, head) patched from the clean run, one at a time.

Patches run batched to a memory budget (:mod:`attnscope.attribution.chunking`); with ``reuse=True`` (the default)
what a patch cannot change comes from the corrupted run (:mod:`attnscope.interventions.runs`): the KV cache of the
unchanged prefix for causal LMs, the outputs of the layers below the patched one for every model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..attribution.chunking import PERTURBATION_MAX_TOKENS, choose_chunk, progress_bar
from ..attribution.scope import scoped_model
from ..results.patching import PatchingResult
from .pairs import example_inputs
from .runs import ExampleRuns, forward_arguments
from .sweep import Sweep

__all__ = ["activation_patching"]


def _row_patch(clean: Tensor, by: str, items: Tensor, start: int):
    """The edit of one chunk: row ``r`` gets the clean activation of its position / head ``items[r]``."""
    def fn(x: Tensor) -> Tensor:
        rows = torch.arange(x.shape[0], device=x.device)
        out = x.clone()
        src = clean.to(x.device, x.dtype)
        if by == "position":
            out[rows, items - start] = src[0, items]
        elif by == "head":
            out[rows, :, items] = src[0][start:, items].transpose(0, 1)
        else:
            out[:] = src[:, start:]
        return out
    return fn


def activation_patching(
    model: nn.Module,
    clean: Any,
    corrupted: Any,
    *,
    metric: Any,
    sites: Sequence[str] | str = ("resid_pre",),
    by: str = "position",
    layers: Sequence[int] | int | None = None,
    tokenizer: Any = None,
    batch_size: int | str = "auto",
    memory_budget: int | None = None,
    reuse: bool = True,
    progress: bool | None = None,
) -> PatchingResult:
    """Exact activation patching of ``corrupted`` runs with activations of ``clean`` runs.

    For every site, layer and position (``by="position"``), head (``by="head"``, site ``head_out``) or whole layer
    (``by="layer"``), the corrupted input runs with that one activation taken from the clean run, and ``metric``
    is read.

    Args:
        model: a Hugging Face model of a family in :mod:`attnscope.adapters.sites`.
        clean, corrupted: inputs as everywhere (strings with ``tokenizer=``, encodings, id tensors), one corrupted
            example per clean one, each pair of the same token count (padding is removed per example).
        metric: ``("logit_diff", a, b)``, a target of ``attribute`` (``TokenId``, ``NextToken``, ``Contrast``, ...)
            or a callable ``outputs -> Tensor[rows]`` (see :mod:`attnscope.interventions.metrics`). With
            ``reuse=True`` a callable gets outputs holding ``.logits`` only.
        sites: site names of ``capture_activations``. by: ``"position"``, ``"layer"`` or ``"head"``.
        layers: the layers to patch (None: all).
        batch_size: patches per forward, or ``"auto"`` (from ``memory_budget`` bytes, default a quarter of the free
            memory). reuse: take unchanged prefixes and lower layers from the corrupted run (False: one full
            forward per patch, the reference behaviour; the numbers are the same).

    Returns:
        PatchingResult: ``raw[site]`` / ``normalized[site]`` ``[batch, layer, position | head | 1]``.
    """
    sweep = Sweep.plan(model, clean, corrupted, metric=metric, sites=sites, by=by, layers=layers,
                       tokenizer=tokenizer)
    cache_arg, keep_arg = forward_arguments(model)
    forwards = 0
    total = len(sweep.keys) * sum(len(sweep.items(p.n)) for p in sweep.pairs)
    with scoped_model(model):
        bar = progress_bar(total, "patching", "patch", progress, show_from=64)
        try:
            for b, pair in enumerate(sweep.pairs):
                runs = ExampleRuns(model, pair, sweep.metric)
                runs.prepare(sweep.keys, tokenizer, reuse, lambda ids: example_inputs(model, ids))
                sweep.add_example(runs.metric, runs.clean_value, runs.corrupted_value)
                items = sweep.items(runs.n)
                vocab = int(runs.logits.shape[-1]) if runs.logits is not None and not runs.metric.last_only else 1
                chunk = choose_chunk(batch_size, memory_budget, model, runs.n, vocab, len(items),
                                     max_tokens=PERTURBATION_MAX_TOKENS, balanced=True)
                for s, layer in sweep.keys:
                    li = sweep.layers.index(layer)
                    for lo in range(0, len(items), chunk):
                        part = torch.tensor(items[lo:lo + chunk], device=pair.clean.device)
                        start = runs.first_run_position(int(part[0]) if by == "position" else 0, reuse)
                        fn = _row_patch(runs.clean[(s, layer)], by, part, start)
                        values = runs.run_patched(s, layer, len(part), start, fn, reuse, cache_arg, keep_arg)
                        sweep.raw[s][b, li, part.cpu()] = values.double().cpu()
                        forwards += len(part)
                        bar.update(len(part))
        finally:
            bar.close()
    return sweep.result("activation", forwards)
