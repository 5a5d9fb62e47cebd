"""``ats.neuron_stats``: one streaming pass over a corpus, per (layer, neuron) statistics in O(neurons × k) memory.

Each batch's MLP hidden state is consumed inside the forward hook of its layer: running sums, maxima and firing
counts are updated, the running top-k lists are merged with the batch in C++ (``topk_merge``), and the context
windows of entries that entered a list are cut from the batch while it is at hand. Nothing of a batch is kept after
its forward, and the forward stops after the last requested layer (the LM head never runs).
"""

from __future__ import annotations

from itertools import islice
from typing import Any, Iterable, Sequence

import torch
from torch import Tensor, nn

from ..ops import empty_topk, topk_merge
from ..adapters.sites import num_layers
from ..inputs import model_device, token_sequences
from ..results.neurons import NeuronStats
from .capture import ActivationCapture, normalize_layers
from ..model_lock import holds_model

__all__ = ["neuron_stats"]

_POSITION_BITS = 20  # key = text << 20 | position: key order is (text, position) order


class _Stop(Exception):
    """Raised by the last requested layer's hook: the rest of the forward is not needed."""


def _check_int(name: str, value: Any, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


class _Accumulator:
    """Running statistics of one layer's neurons."""

    def __init__(self, units: int, k: int, width: int, device: torch.device) -> None:
        self.sum = torch.zeros(units, dtype=torch.float64, device=device)
        self.max = torch.full((units,), float("-inf"), dtype=torch.float32, device=device)
        self.fired = torch.zeros(units, dtype=torch.long, device=device)
        self.values, self.keys = empty_topk(units, k, device=device)
        self.window_acts = torch.zeros(units, k, width, dtype=torch.float32, device=device)
        self.window_ids = torch.full((units, k, width), -1, dtype=torch.int32, device=device)


class _Stream:
    def __init__(self, layers: list[int], k: int, context: int, threshold: float) -> None:
        self.layers = layers
        self.k = k
        self.context = context
        self.threshold = threshold
        self.acc: dict[int, _Accumulator] = {}
        self.n_tokens = 0
        # per batch
        self.ids: Tensor | None = None
        self.valid: Tensor | None = None
        self.keys: Tensor | None = None
        self.rows: tuple[Tensor, Tensor] | None = None

    def start_batch(self, ids: Tensor, valid: Tensor, first_text: int) -> None:
        self.ids, self.valid = ids, valid
        b_idx, p_idx = valid.nonzero(as_tuple=True)
        self.rows = (b_idx, p_idx)
        self.keys = ((b_idx + first_text) << _POSITION_BITS) | p_idx
        self.n_tokens += int(b_idx.numel())

    def __call__(self, site: str, layer: int, x: Tensor) -> None:
        b_idx, p_idx = self.rows
        flat = x[b_idx, p_idx].float()  # [m, units], the non-padding tokens only
        units = flat.shape[1]
        width = 2 * self.context + 1
        acc = self.acc.get(layer)
        if acc is None:
            acc = self.acc[layer] = _Accumulator(units, self.k, width, x.device)
        acc.sum += flat.sum(0, dtype=torch.float64)
        acc.max = torch.maximum(acc.max, flat.amax(0))
        acc.fired += (flat > self.threshold).sum(0)
        merged = topk_merge(acc.values, acc.keys, flat, self.keys)  # on x's device (the op runs on every device)
        source = merged.source
        # Context windows: old entries keep theirs, entries from this batch cut theirs from x.
        fresh = source >= self.k
        old = torch.where(fresh, 0, source.clamp_min(0))
        acts = acc.window_acts.gather(1, old.unsqueeze(-1).expand(-1, -1, width))
        ids = acc.window_ids.gather(1, old.unsqueeze(-1).expand(-1, -1, width))
        if bool(fresh.any()):
            unit, slot = fresh.nonzero(as_tuple=True)
            row = source[unit, slot] - self.k
            b = b_idx[row]
            pos = p_idx[row].unsqueeze(1) + torch.arange(-self.context, self.context + 1, device=x.device)
            inside = (pos >= 0) & (pos < x.shape[1])
            pos_c = pos.clamp(0, x.shape[1] - 1)
            inside &= self.valid[b.unsqueeze(1), pos_c]
            acts[unit, slot] = torch.where(inside, x[b.unsqueeze(1), pos_c, unit.unsqueeze(1)].float(), 0.0)
            ids[unit, slot] = torch.where(inside, self.ids[b.unsqueeze(1), pos_c], -1).to(torch.int32)
        empty = source < 0
        acts[empty] = 0.0
        ids[empty] = -1
        acc.values, acc.keys = merged.values, merged.keys
        acc.window_acts, acc.window_ids = acts, ids
        if layer == self.layers[-1]:
            raise _Stop


def _batches(texts: Iterable[Any], size: int) -> Iterable[list[Any]]:
    it = iter(texts)
    while batch := list(islice(it, size)):
        yield batch


@holds_model
def neuron_stats(model: nn.Module, tokenizer: Any, texts: Iterable[str] | Sequence[str], *,
                 layers: Sequence[int] | int | None = None, top_k: int = 20, context: int = 8, batch_size: int = 8,
                 threshold: float = 0.0, site: str = "mlp_hidden", progress: bool | None = None) -> NeuronStats:
    """Per (layer, neuron) statistics of the MLP neurons over a corpus, in one streaming pass.

    Args:
        model: a Hugging Face model of a family with a site adapter (see :mod:`attnscope.adapters.sites`).
        tokenizer: its tokenizer (texts are tokenized batch by batch, truncated to the model's length).
        texts: any iterable of strings (a generator streams: memory does not grow with the corpus).
        layers: layer indices; None = all.
        top_k: how many top-activating (text, position) pairs to keep per neuron (ties go to the earlier text, then
            the earlier position).
        context: tokens kept on each side of a top position for the view.
        batch_size: texts per forward.
        threshold: a neuron "fires" on a token when its activation exceeds this (default 0).
        site: ``"mlp_hidden"`` (the neurons) or another site name, or a module path template with ``{i}``.
        progress: a progress bar (None = automatic: on in notebooks and terminals).

    Returns:
        NeuronStats: ``top_values`` / ``top_text`` / ``top_position`` ``[layer, neuron, k]``, the context windows,
        ``mean``, ``max`` and ``frequency`` ``[layer, neuron]``.
    """
    _check_int("top_k", top_k, 1)
    _check_int("context", context, 0)
    _check_int("batch_size", batch_size, 1)
    if isinstance(texts, (str, bytes)):
        raise TypeError("texts must be an iterable of strings (a list, a generator), got one string: wrap it in a list")
    layer_list = normalize_layers(layers, num_layers(model))
    sites = {"site": site} if "{i}" in site else (site,)
    name = "site" if "{i}" in site else site
    stream = _Stream(layer_list, top_k, context, float(threshold))
    device = model_device(model)
    n_texts = truncated = 0
    texts_seen = 0
    total = len(texts) if hasattr(texts, "__len__") else None
    bar = _progress(total, progress)
    scope = ActivationCapture(model, sites=sites, layers=layer_list, consumer=stream)
    with scope, torch.no_grad():
        for batch in _batches(texts, batch_size):
            if not all(isinstance(t, str) for t in batch):
                raise TypeError(f"texts must be strings, got {sorted({type(t).__name__ for t in batch})}")
            seqs, cut = token_sequences(batch, tokenizer=tokenizer, model=model, what="texts")
            truncated += cut
            width = max(len(s) for s in seqs)
            ids = torch.zeros(len(seqs), width, dtype=torch.long)
            mask = torch.zeros(len(seqs), width, dtype=torch.long)
            for r, s in enumerate(seqs):  # right padding: positions are the text's own
                ids[r, :len(s)] = torch.tensor(s, dtype=torch.long)
                mask[r, :len(s)] = 1
            ids, mask = ids.to(device), mask.to(device)
            stream.start_batch(ids, mask.bool(), texts_seen)
            try:
                model(input_ids=ids, attention_mask=mask)
            except _Stop:
                pass
            texts_seen += len(seqs)
            n_texts += len(seqs)
            if bar is not None:
                bar.update(len(seqs))
    if bar is not None:
        bar.close()
    if n_texts == 0:
        raise ValueError("texts is empty: pass at least one text")
    return _result(stream, layer_list, name, tokenizer, n_texts, truncated, top_k, context, float(threshold))


def _progress(total: int | None, progress: bool | None):
    if progress is False:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return None
    return tqdm(total=total, unit="text", desc="neuron_stats", disable=None if progress is None else not progress)


def _result(stream: _Stream, layers: list[int], site: str, tokenizer: Any, n_texts: int, truncated: int, k: int,
            context: int, threshold: float) -> NeuronStats:
    accs = [stream.acc[layer] for layer in layers]
    n = max(stream.n_tokens, 1)
    keys = torch.stack([a.keys for a in accs]).cpu()
    window_ids = torch.stack([a.window_ids for a in accs]).cpu()
    used = sorted(set(window_ids[window_ids >= 0].unique().tolist()))
    strings = tokenizer.convert_ids_to_tokens(used) if tokenizer is not None and used else [str(i) for i in used]
    return NeuronStats(
        layers=list(layers), site=site,
        top_values=torch.stack([a.values for a in accs]).cpu(),
        top_text=torch.where(keys >= 0, keys >> _POSITION_BITS, -1),
        top_position=torch.where(keys >= 0, keys & ((1 << _POSITION_BITS) - 1), -1),
        context_ids=window_ids, context_acts=torch.stack([a.window_acts for a in accs]).cpu(),
        mean=torch.stack([a.sum for a in accs]).cpu() / n,
        max=torch.stack([a.max for a in accs]).cpu(),
        frequency=torch.stack([a.fired for a in accs]).cpu().double() / n,
        n_texts=n_texts, n_tokens=stream.n_tokens, truncated=truncated, top_k=k, context=context,
        threshold=threshold, vocab={int(i): str(s) for i, s in zip(used, strings)},
    )
