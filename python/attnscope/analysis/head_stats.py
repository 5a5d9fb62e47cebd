"""``head_stats``: per-(layer, head) attention statistics over many texts, computed in the C++ chunk loop.

Every layer's attention probabilities are recomputed from q and k inside ``attention_head_stats`` (the op reuses the
row kernel of ``attention_probs``) and reduced on the spot to per-example sums; the ``[batch, heads, L, L]`` tensor
is never built. The model's own attention implementation (SDPA by default) still computes each layer's output.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from .. import ops
from ..capturing import AttentionEvent, capture
from ..inputs import model_device, token_sequences
from ..results import HeadStats
from ..model_lock import holds_model

STAT_NAMES: tuple[str, ...] = ops.HEAD_STAT_NAMES
DEFAULT_SEGMENT_LEN = 16


# --- inputs -----------------------------------------------------------------------------------------------------
def repeated_sequences(tokenizer_or_vocab_size: Any, n: int, segment_len: int, *, seed: int = 0) -> Tensor:
    """Sequences made of a random segment repeated twice, for the induction score.

    Each row is ``[bos] + segment + segment``: ``segment_len`` distinct token ids drawn uniformly at random
    (without replacement, so every token of the second copy has exactly one earlier occurrence) from the
    tokenizer's non-special ids, or from ``0 .. vocab_size - 1`` when an int is given. ``bos`` is the tokenizer's
    ``bos_token_id`` when it has one (no bos for an int).

    Returns:
        ``Tensor [n, (1 +) 2 * segment_len]`` of int64 input ids.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not isinstance(segment_len, int) or segment_len < 2:
        raise ValueError(f"segment_len must be an integer >= 2, got {segment_len!r}")
    if isinstance(tokenizer_or_vocab_size, int) and not isinstance(tokenizer_or_vocab_size, bool):
        pool, bos = torch.arange(tokenizer_or_vocab_size), None
    elif hasattr(tokenizer_or_vocab_size, "all_special_ids"):
        tok = tokenizer_or_vocab_size
        special = set(tok.all_special_ids)
        pool = torch.tensor([i for i in range(len(tok)) if i not in special], dtype=torch.long)
        bos = tok.bos_token_id
    else:
        raise TypeError(f"pass a Hugging Face tokenizer or a vocabulary size (int), got "
                        f"{type(tokenizer_or_vocab_size).__name__}")
    if segment_len > pool.numel():
        raise ValueError(f"segment_len={segment_len} needs that many distinct tokens, but only {pool.numel()} "
                         "non-special token ids are available")
    g = torch.Generator().manual_seed(seed)
    segment = pool[torch.rand(n, pool.numel(), generator=g).argsort(dim=1)[:, :segment_len]]
    parts = [segment, segment]
    if bos is not None:
        parts.insert(0, torch.full((n, 1), int(bos), dtype=torch.long))
    return torch.cat(parts, dim=1)


def _encode(model: nn.Module, tokenizer: Any, texts: Any, max_length: int | None) -> tuple[list[Tensor], int]:
    """Per-text 1-D input id tensors (no padding), cut to the maximum length; and how many were cut."""
    if isinstance(texts, Sequence) and not isinstance(texts, (str, Tensor, Mapping)) and len(texts) == 0:
        raise ValueError("texts is empty: pass at least one text, e.g. head_stats(model, tokenizer, ['The cat sat.'])")
    if tokenizer is None and (isinstance(texts, str) or (isinstance(texts, Sequence) and
                                                         not isinstance(texts, (Tensor, Mapping)))):
        raise ValueError("texts are strings, so head_stats needs the model's tokenizer: "
                         "head_stats(model, tokenizer, texts)")
    seqs, truncated = token_sequences(texts, tokenizer=tokenizer, model=model, max_length=max_length)
    return [torch.tensor(s, dtype=torch.long) for s in seqs], truncated


def _batches(seqs: list[Tensor], batch_size: int, pad_id: int):
    """Right-padded batches of similar lengths (longest first): (input_ids, attention_mask) pairs."""
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    for start in range(0, len(order), batch_size):
        group = [seqs[i] for i in order[start:start + batch_size] if len(seqs[i]) > 0]
        if not group:
            continue
        width = max(len(s) for s in group)
        ids = torch.full((len(group), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(group), width), dtype=torch.long)
        for r, s in enumerate(group):
            ids[r, :len(s)] = s
            mask[r, :len(s)] = 1
        yield ids, mask


# --- the statistics from full weights (eager fallback; also the benchmark's eager side) ---------------------------
def stats_from_weights(weights: Tensor, input_ids: Tensor, valid: Tensor, segment_len: int = 0) -> tuple[Tensor, Tensor]:
    """The sums and counts of ``attention_head_stats`` from materialised probabilities.

    Args:
        weights: ``[batch, heads, L, L]`` attention probabilities (query, key).
        input_ids, valid: ``[batch, L]``.

    Returns:
        sums ``[batch, heads, 6]`` (float64) and counts ``[batch, 6]`` (int64), columns in ``STAT_NAMES`` order.
    """
    p = weights if weights.is_floating_point() else weights.float()  # row sums in this dtype, totals in float64
    batch, heads, L, _ = p.shape
    v = valid.bool()
    same = input_ids[:, :, None] == input_ids[:, None, :]  # [batch, i, j]
    idx = torch.arange(L, device=p.device)
    earlier = idx[None, :, None] > idx[None, None, :]
    sums = torch.zeros(batch, heads, 6, dtype=torch.float64, device=p.device)
    counts = torch.zeros(batch, 6, dtype=torch.long, device=p.device)
    zero = p.new_zeros(())

    def add(col: int, values: Tensor, rows: Tensor) -> None:  # values [batch, heads, n], rows [batch, n]
        sums[:, :, col] = torch.where(rows[:, None], values, zero).double().sum(-1)
        counts[:, col] = rows.sum(-1)

    if L > 1:
        add(0, p.diagonal(offset=-1, dim1=-2, dim2=-1), v[:, 1:] & v[:, :-1])
    P = segment_len
    if P >= 2 and L > P:
        rows = v[:, P:] & v[:, :-P] & v[:, 1:L - P + 1] & (input_ids[:, P:] == input_ids[:, :-P])
        add(1, p.diagonal(offset=-(P - 1), dim1=-2, dim2=-1)[..., 1:], rows)
    dup = same & earlier & v[:, None, :]
    add(2, (p * dup[:, None]).sum(-1), v & dup.any(-1))
    add(3, -torch.where(p > 0, p * p.log(), zero).sum(-1), v)
    first = v.long().argmax(-1)  # first valid position
    add(4, p.gather(-1, first.view(batch, 1, 1, 1).expand(batch, heads, L, 1)).squeeze(-1), v)
    add(5, (p * (idx[:, None] - idx[None, :]).abs().to(p.dtype)).sum(-1), v)
    return sums, counts


# --- the public function -------------------------------------------------------------------------------------------
class _Accumulator:
    """A capture consumer (``attnscope.capturing.CaptureConsumer``): runs the op on each call's q and k, pools the
    sums per layer. It needs no probabilities from the engine: the op computes them inside its chunk loop."""

    needs_probs = False

    def __init__(self, segment_len: int) -> None:
        self.segment_len = segment_len
        self.sums: dict[int, Tensor] = {}
        self.counts: dict[int, Tensor] = {}

    def on_attention(self, event: AttentionEvent) -> None:
        ids = event.inputs.get("input_ids")
        if event.stack not in ("main", "encoder", "decoder") or ids is None or event.k_len != ids.shape[1]:
            return  # cross-attention (or a call this accumulator cannot align with the inputs)
        mask = event.inputs.get("attention_mask")
        valid = torch.ones_like(ids, dtype=torch.bool) if mask is None else mask.bool()
        r = ops.attention_head_stats(event.query, event.key, spec=event.spec, input_ids=ids, valid=valid,
                                     induction_period=self.segment_len)
        self.add(event.layer, r.sums, r.counts)  # pooled on the model's device; one transfer at the end

    def add(self, layer: int, sums: Tensor, counts: Tensor) -> None:
        s, c = sums.sum(0), counts.sum(0)
        if layer in self.sums:
            self.sums[layer] += s
            self.counts[layer] += c
        else:
            self.sums[layer], self.counts[layer] = s, c


@holds_model
def head_stats(
    model: nn.Module,
    tokenizer: Any = None,
    texts: Sequence[str] | Tensor | Mapping[str, Tensor] | None = None,
    *,
    batch_size: int = 8,
    stats: Sequence[str] | str | None = None,
    induction: bool = False,
    segment_len: int | None = None,
    n_sequences: int = 64,
    seed: int = 0,
    max_length: int | None = None,
    progress: bool = True,
    query_chunk: int | None = None,
) -> HeadStats:
    """Attention statistics per (layer, head), pooled over ``texts``, without storing any attention matrix.

    Each statistic is a mean over query rows ``i`` of every text (pooled over texts, so longer texts weigh more),
    with ``p`` the row's attention probabilities over key positions ``j`` and padding excluded as query and key:

    - ``prev_token``: ``p[i, i-1]``, over rows ``i >= 1``.
    - ``induction`` (needs ``segment_len = s``): ``p[i, i-s+1]``, over rows where the token ``s`` positions back is
      the same token (``id[i] == id[i-s]``): on ``[bos, segment, segment]`` sequences, the rows of the second copy,
      and ``i-s+1`` is the token that followed the current token's first occurrence.
    - ``duplicate_token``: ``sum of p[i, j]`` over earlier positions ``j < i`` holding the same token id, over rows
      that have such a ``j``.
    - ``entropy``: ``-sum_j p[i, j] log p[i, j]`` in nats, over all rows.
    - ``first_token``: ``p[i, f]`` where ``f`` is the text's first token (usually bos), over all rows.
    - ``distance``: the mean attended distance ``sum_j p[i, j] |i - j|`` (``= sum_j p[i, j] (i - j)`` for causal
      models), over all rows.

    Args:
        model: a Hugging Face model whose attention goes through transformers' AttentionInterface (others fall
            back to eager ``output_attentions`` with a warning).
        tokenizer: the model's tokenizer; needed for string texts and for ``induction=True`` without texts.
        texts: strings, an ``input_ids`` tensor ``[n, seq]``, or a tokenizer's output with ``attention_mask``.
            Texts longer than the model's maximum (``max_position_embeddings``, or ``max_length``) are truncated to
            their first tokens, with a warning.
        batch_size: texts per forward (texts are grouped by length to reduce padding).
        stats: names to keep (default: all; ``induction`` only when a segment length is known).
        induction: with ``texts=None``, generate ``n_sequences`` repeated random segments of length ``segment_len``
            (default 16) with :func:`repeated_sequences` (``seed``); with texts, compute the induction score on them.
        segment_len: the repeated segment's length ``s`` for ``induction``.
        progress: a tqdm progress bar over batches; False silences it.
        query_chunk: query rows per chunk in the C++ loop (None = automatic).

    Returns:
        HeadStats: ``hs["induction"]`` is a ``Tensor [layer, head]``; ``hs.top("induction", 3)``,
        ``hs.to_pandas()``, ``hs.plot()``.
    """
    from tqdm.auto import tqdm

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a Hugging Face transformer (torch.nn.Module), got {type(model).__name__}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if segment_len is not None and (not isinstance(segment_len, int) or segment_len < 2):
        raise ValueError(f"segment_len must be an integer >= 2 (the repeated segment's length), got {segment_len!r}")
    if induction and segment_len is None:
        segment_len = DEFAULT_SEGMENT_LEN
    if texts is None:
        if not induction:
            raise ValueError("texts is None: pass texts, or induction=True to generate repeated random segments")
        source = tokenizer if tokenizer is not None else getattr(getattr(model, "config", None), "vocab_size", None)
        if source is None:
            raise ValueError("induction=True without texts needs the tokenizer (or a model config with vocab_size)")
        texts = repeated_sequences(source, n_sequences, segment_len, seed=seed)
    names = _select(stats, segment_len)
    seqs, truncated = _encode(model, tokenizer, texts, max_length)
    pad_id = getattr(tokenizer, "pad_token_id", None)
    pad_id = 0 if pad_id is None else int(pad_id)

    acc = _Accumulator(segment_len or 0)
    cap = capture(model, query_chunk=query_chunk, consumers=[acc], record=False)
    device = model_device(model)
    batches = list(_batches(seqs, batch_size, pad_id))
    with torch.no_grad(), cap:
        for ids, mask in tqdm(batches, desc="head_stats", unit="batch", disable=not progress, leave=False):
            calls_before = cap.calls
            model(input_ids=ids.to(device), attention_mask=mask.to(device))
            if cap.calls == calls_before:
                break
    if not acc.sums:  # nothing went through AttentionInterface
        _eager_fallback(model, batches, acc, progress)
    layers = sorted(acc.sums)
    sums = torch.stack([acc.sums[layer].cpu() for layer in layers])  # [layer, head, 6]; layers may sit on devices
    counts = acc.counts[layers[0]].cpu()
    means = sums / counts.to(sums.dtype)  # NaN where nothing was counted
    return HeadStats(
        scores={n: means[:, :, STAT_NAMES.index(n)] for n in names},
        counts={n: int(counts[STAT_NAMES.index(n)]) for n in names},
        layers=layers, n_texts=len(seqs), n_tokens=int(sum(len(s) for s in seqs)),
        segment_len=segment_len, truncated=truncated,
    )


def _select(stats: Sequence[str] | str | None, segment_len: int | None) -> list[str]:
    if stats is None:
        return [n for n in STAT_NAMES if n != "induction" or segment_len]
    names = [stats] if isinstance(stats, str) else list(stats)
    if not names:
        raise ValueError(f"stats is empty: pass None (all) or some of {list(STAT_NAMES)}")
    for n in names:
        if n not in STAT_NAMES:
            raise ValueError(f"unknown statistic {n!r}: choose from {list(STAT_NAMES)}")
    if "induction" in names and not segment_len:
        raise ValueError("the induction score needs the repeated segment's length: pass segment_len=s "
                         "(or induction=True to generate repeated sequences)")
    return [n for n in STAT_NAMES if n in names]


def _eager_fallback(model: nn.Module, batches: list, acc: _Accumulator, progress: bool) -> None:
    from tqdm.auto import tqdm

    warnings.warn(f"{type(model).__name__} does not route attention through transformers' AttentionInterface; "
                  "head_stats falls back to eager attention with output_attentions=True (slower, more memory)",
                  RuntimeWarning, stacklevel=3)
    config = model.config
    saved = config.__dict__.get("_attn_implementation_internal")
    device = model_device(model)
    try:
        config.__dict__["_attn_implementation_internal"] = "eager"
        with torch.no_grad():
            for ids, mask in tqdm(batches, desc="head_stats (eager)", unit="batch", disable=not progress,
                                  leave=False):
                ids, mask = ids.to(device), mask.to(device)
                out = model(input_ids=ids, attention_mask=mask, output_attentions=True)
                for layer, w in enumerate(a for a in out.attentions if a is not None):
                    s, c = stats_from_weights(w, ids, mask.bool(), acc.segment_len)
                    acc.add(layer, s, c)
    finally:
        config.__dict__["_attn_implementation_internal"] = saved
