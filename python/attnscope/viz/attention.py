"""Attention views: the head view (lines from query tokens to key tokens) and the model view (layer × head grid)."""

from __future__ import annotations

import torch
from torch import Tensor

from .html import View

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
    tokens = result.tokens[batch] if result.tokens is not None else None
    key_tokens = result.key_tokens[batch] if result.key_tokens is not None else tokens

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


def model_view(result, *, batch: int = 0) -> View:
    """A layer × head grid of small heatmaps; click one to enlarge it (hover shows tokens and weight)."""
    w, queries, keys = _example(result, batch)
    n = max(w.shape[-2], w.shape[-1])
    labels = keys
    extra = {}
    if n > MAX_GRID:  # pool long inputs so the grid stays light; labels become position ranges
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
    data = {**extra, "layers": [str(layer) for layer in result.layers], "heads": _head_labels(result, w.shape[1]),
            "cells": cells, "n": size, "labels": labels}
    return View("model", data, token_count=len(keys), title=f"attnscope · {_measure(result)} model view", height=720)


def plot(result, *, batch: int = 0, layer: int | None = None, head: int = 0):
    """A matplotlib heatmap of one layer and head (default: the last captured layer, head 0)."""
    import matplotlib.pyplot as plt

    w, queries, keys = _example(result, batch)
    li = len(result.layers) - 1 if layer is None else result.layers.index(layer)
    fig, ax = plt.subplots(figsize=(max(4, len(keys) * 0.3), max(3.5, len(queries) * 0.3)))
    image = ax.imshow(w[li, min(head, w.shape[1] - 1)].numpy(), cmap="Blues", vmin=0)
    ax.set_xticks(range(len(keys)), keys, rotation=90, fontsize=7)
    ax.set_yticks(range(len(queries)), queries, fontsize=7)
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    ax.set_title(f"layer {result.layers[li]}, head {_head_labels(result, w.shape[1])[min(head, w.shape[1] - 1)]}")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig
