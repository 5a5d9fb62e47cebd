"""Attention views: the head view (lines from query tokens to key tokens) and the model view (layer × head grid)."""

from __future__ import annotations

import torch
from torch import Tensor

from .html import View
from .readable import readable_tokens

MAX_GRID = 48  # model-view heatmaps are pooled to at most this many rows and columns


def _is_cross(result) -> bool:
    """Keys are other tokens than the queries (cross attention of an encoder-decoder model)."""
    return result.key_attention_mask is not None or result.key_tokens is not None or result.key_input_ids is not None


def _example(result, batch: int) -> tuple[Tensor, list[str], list[str]]:
    """[layer, head, q, k] weights of one example without padding, and its query/key token labels."""
    if result.weights is None:
        raise ValueError("this AttentionResult holds no weights (only topk/entropy were captured); capture weights to view them")
    w = result.weights.detach().float().cpu()
    if not 0 <= batch < w.shape[1]:
        raise ValueError(f"batch {batch} out of range: the result has {w.shape[1]} examples (0..{w.shape[1] - 1})")
    w = w[:, batch]
    if w.dim() == 3:  # reduced over heads
        w = w.unsqueeze(1)
    n_q, n_k = w.shape[-2], w.shape[-1]
    cross = _is_cross(result)
    key_mask = result.key_attention_mask if cross else result.attention_mask
    keys = list(range(n_k))
    if key_mask is not None and key_mask.shape[-1] == n_k:
        keys = [i for i, keep in enumerate(key_mask[batch].tolist()) if keep]
    if cross:  # queries are other tokens (the decoder's): their own mask, no offset
        offset = 0
        query_mask = result.attention_mask
        queries = list(range(n_q))
        if query_mask is not None and query_mask.shape[-1] == n_q:
            queries = [i for i, keep in enumerate(query_mask[batch].tolist()) if keep]
    else:
        offset = n_k - n_q
        queries = [i for i in range(n_q) if (i + offset) in set(keys)] if keys != list(range(n_k)) else list(range(n_q))
    w = w[:, :, queries][:, :, :, keys]
    tokens = readable_tokens(result.tokens[batch]) if result.tokens is not None else None
    key_tokens = readable_tokens(result.key_tokens[batch]) if result.key_tokens is not None else tokens

    def label(labels: list[str] | None, i: int) -> str:
        return labels[i] if labels is not None and i < len(labels) else str(i)

    return w, [label(tokens, i + offset) for i in queries], [label(key_tokens, i) for i in keys]


def _measure(result) -> str:
    """What the matrices hold: "attention", or a context-mixing method ("alti", ...)."""
    return getattr(result, "method", None) or "attention"


def _head_labels(result, n: int) -> list[str]:
    if result.reduce is not None:
        return [result.reduce]
    if result.method is not None and result.weights is not None and result.weights.dim() == 4:
        return [result.method]  # a context-mixing result: one matrix per layer
    return [str(h) for h in (result.heads if result.heads is not None else range(n))]


def head_view(result, *, batch: int = 0, top: int = 8, min_weight: float = 0.01) -> View:
    """Lines from each query token to the keys it attends (its ``top`` largest weights ≥ ``min_weight``)."""
    w, queries, keys = _example(result, batch)
    k = min(top, w.shape[-1])
    values, indices = w.topk(k, dim=-1)
    values = values.numpy().round(4)
    indices = indices.numpy()
    rows = []
    for li in range(w.shape[0]):
        per_head = []
        for hi in range(w.shape[1]):
            per_query = []
            for qi in range(w.shape[2]):
                flat = []
                for idx, val in zip(indices[li, hi, qi].tolist(), values[li, hi, qi].tolist()):
                    if val >= min_weight:
                        flat += [int(idx), float(val)]
                per_query.append(flat)
            per_head.append(per_query)
        rows.append(per_head)
    data = {"queries": queries, "keys": keys, "layers": [str(layer) for layer in result.layers],
            "heads": _head_labels(result, w.shape[1]), "rows": rows}
    height = min(900, 90 + 18 * max(len(queries), len(keys)))
    return View("head", data, token_count=len(keys), title=f"attnscope · {_measure(result)} head view", height=height)


def _keep_top(w: Tensor, top: int | None) -> Tensor:
    """Each query's ``top`` largest weights, the rest 0 (``top=None``: all)."""
    if top is None:
        return w
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"top must be a positive int (weights kept per query) or None, got {top!r}")
    values, indices = w.topk(min(top, w.shape[-1]), dim=-1)
    return torch.zeros_like(w).scatter_(-1, indices, values)


def _scale_note(scale: float, n: int, pooled: bool) -> str:
    """The model view's legend: the colour scale adapts to the largest value shown, and says so."""
    note = f"colour: white 0 \u2192 blue {scale:.3g} (the largest value shown"
    if pooled:
        step = n / MAX_GRID
        note += (f"; {n} tokens pooled to {MAX_GRID}\u00d7{MAX_GRID} cells, each the mean of about "
                 f"{step:.0f}\u00d7{step:.0f} weights")
    return note + ")"


def model_view(result, *, batch: int = 0, top: int | None = None) -> View:
    """A layer × head grid of small heatmaps; click one to enlarge it (hover shows tokens and weight).

    The colour scale runs from 0 to the largest value shown (stated in the legend), so pooled long inputs and
    diffuse heads stay visible. ``top``: keep each query's ``top`` largest weights (the rest drawn as 0), as the
    head view's ``top``.
    """
    w, queries, keys = _example(result, batch)
    w = _keep_top(w, top)
    n = max(w.shape[-2], w.shape[-1])
    labels = keys
    extra = {}
    pooled = n > MAX_GRID
    if pooled:  # pool long inputs so the grid stays light; labels become position ranges
        w = torch.nn.functional.adaptive_avg_pool2d(w, (MAX_GRID, MAX_GRID))
        step = n / MAX_GRID
        labels = [f"{int(i * step)}-{int((i + 1) * step) - 1}" for i in range(MAX_GRID)]
    elif _is_cross(result):  # decoder rows over encoder columns: a rectangle with its own row labels
        extra = {"nr": w.shape[-2], "nc": w.shape[-1], "row_labels": queries}
    elif w.shape[-2] != w.shape[-1]:  # generation: pad the query axis to a square
        w = torch.nn.functional.pad(w, (0, 0, w.shape[-1] - w.shape[-2], 0))
    size = max(w.shape[-2], w.shape[-1])
    cells = [[[round(v, 4) for v in w[li, hi].reshape(-1).tolist()] for hi in range(w.shape[1])]
             for li in range(w.shape[0])]
    scale = float(w.max()) if w.numel() and float(w.max()) > 0 else 1.0
    data = {**extra, "layers": [str(layer) for layer in result.layers], "heads": _head_labels(result, w.shape[1]),
            "cells": cells, "n": size, "labels": labels, "scale": scale, "scale_note": _scale_note(scale, n, pooled)}
    return View("model", data, token_count=len(keys), title=f"attnscope · {_measure(result)} model view", height=720)


def _layer_index(result, layer: int) -> int:
    if layer not in result.layers:
        raise ValueError(f"layer {layer!r} was not captured: the result holds layers {result.layers}")
    return result.layers.index(layer)


def _head_index(result, head: int | None, n: int, labels: list[str]) -> int:
    """Position on the head axis of model head ``head`` (selected heads: its place among them; None: the first)."""
    if head is None:
        return 0
    if isinstance(head, bool) or not isinstance(head, int):
        raise TypeError(f"head must be an int, got {type(head).__name__}")
    if result.heads is not None and result.reduce is None and n == len(result.heads):
        if head not in result.heads:
            raise ValueError(f"head {head} was not captured: the result holds heads {result.heads}")
        return result.heads.index(head)
    if not 0 <= head < n:
        held = f"{n} heads (0..{n - 1})" if labels == [str(i) for i in range(n)] else f"one matrix ({labels[0]}): head=0"
        raise ValueError(f"head {head} out of range: the result holds {held}")
    return head


def plot(result, *, batch: int = 0, layer: int | None = None, head: int | None = None):
    """A matplotlib heatmap of one layer and head (default: the last captured layer, the first captured head).
    ``head`` is the model's head index; one not captured raises a ValueError naming the heads held."""
    import matplotlib.pyplot as plt

    w, queries, keys = _example(result, batch)
    li = len(result.layers) - 1 if layer is None else _layer_index(result, layer)
    labels = _head_labels(result, w.shape[1])
    hi = _head_index(result, head, w.shape[1], labels)
    fig, ax = plt.subplots(figsize=(max(4, len(keys) * 0.3), max(3.5, len(queries) * 0.3)))
    image = ax.imshow(w[li, hi].numpy(), cmap="Blues", vmin=0)
    ax.set_xticks(range(len(keys)), keys, rotation=90, fontsize=7)
    ax.set_yticks(range(len(queries)), queries, fontsize=7)
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    ax.set_title(f"layer {result.layers[li]}, head {labels[hi]}")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig
