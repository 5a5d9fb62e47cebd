"""AttentionResult: captured attention weights and what was computed from them."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field, replace
from typing import Any, Callable, ClassVar

import torch
from torch import Tensor

from .export import FigureExport
from .persist import persistable


@persistable
@dataclass
class AttentionResult(FigureExport):
    """Attention captured from one forward pass (or one ``generate()`` call).

    Attributes:
        weights: ``[layer, batch, head, query, key]``; ``[layer, batch, query, key]`` when reduced over heads;
            None when only ``topk``/``entropy`` were asked for.
        layers: captured layer indices, in the order of the first axis.
        heads: selected head indices (None = all heads).
        reduce: the head reduction ("mean", "max", "sum") or None.
        topk_values, topk_indices: ``[layer, batch, head, query, k]`` when ``topk`` was given.
        entropy: ``[layer, batch, head, query]`` (nats) when ``entropy=True``.
        key_tokens, key_input_ids, key_attention_mask: the keys' tokens, ids and padding mask where keys are other
            tokens than the queries (cross attention: the decoder's queries attend the encoder's tokens); None for
            self-attention, whose keys are the queries' tokens (``tokens``, ``input_ids``, ``attention_mask``).
        attention_mask: ``[batch, key]`` padding mask of the inputs (1 = token), when known.
        tokens: token strings per example, when a tokenizer was given.
        encoder, decoder, cross: per-stack results of encoder-decoder models (same layout).
        method: None for attention weights; "norm", "alti" or "value_zeroing" for a context-mixing result
            (``attnscope.context_mixing``), whose ``weights`` are mixing scores, not probabilities.
        residual_included: the scores already account for the residual stream (ALTI, value zeroing), so rollout and
            flow chain them without adding the identity.
        grad_sources: one callable per layer returning that layer's dF/dP once a backward has run (set by the
            capture engine with ``grad=True``; read through ``.grad``; not saved).
    """

    # What a loaded result is checked against (attnscope.results.validation).
    SHAPES: ClassVar[dict[str, Any]] = {
        "weights": ("float layer batch head query key", "float layer batch query key"),
        "layers": "list layer",
        "heads": "list head",
        "topk_values": ("float layer batch head query k", "float layer batch query k"),
        "topk_indices": ("int layer batch head query k", "int layer batch query k"),
        "entropy": ("float layer batch head query", "float layer batch query"),
        "input_ids": "int batch seq",
        "tokens": "list batch",
        "attention_mask": "mask batch seq",
        "key_input_ids": "int batch key_seq",
        "key_tokens": "list batch",
        "key_attention_mask": "mask batch key_seq",
    }

    weights: Tensor | None
    layers: list[int]
    heads: list[int] | None = None
    reduce: str | None = None
    topk_values: Tensor | None = None
    topk_indices: Tensor | None = None
    entropy: Tensor | None = None
    attention_mask: Tensor | None = None
    tokens: list[list[str]] | None = None
    input_ids: Tensor | None = None
    key_tokens: list[list[str]] | None = None
    key_input_ids: Tensor | None = None
    key_attention_mask: Tensor | None = None
    encoder: AttentionResult | None = None
    decoder: AttentionResult | None = None
    cross: AttentionResult | None = None
    method: str | None = None
    residual_included: bool = False
    outputs: Any = field(default=None, repr=False, metadata={"persist": False})
    grad_sources: list[Callable[[], Tensor | None]] | None = field(
        default=None, repr=False, metadata={"persist": False}
    )

    @property
    def grad(self) -> Tensor | None:
        """dF/dP for whatever was back-propagated (``grad=True``), laid out like ``weights``; None before."""
        if not self.grad_sources:
            return None
        parts = [part() for part in self.grad_sources]
        if any(p is None for p in parts):
            return None
        return torch.stack(parts)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def _map(self, fn: Callable[[Tensor], Tensor]) -> AttentionResult:
        def apply(t):
            return fn(t) if isinstance(t, Tensor) else t

        return replace(
            self,
            weights=apply(self.weights),
            topk_values=apply(self.topk_values),
            topk_indices=apply(self.topk_indices),
            entropy=apply(self.entropy),
            attention_mask=apply(self.attention_mask),
            input_ids=apply(self.input_ids),
            key_input_ids=apply(self.key_input_ids),
            key_attention_mask=apply(self.key_attention_mask),
            encoder=self.encoder._map(fn) if self.encoder is not None else None,
            decoder=self.decoder._map(fn) if self.decoder is not None else None,
            cross=self.cross._map(fn) if self.cross is not None else None,
        )

    def cpu(self) -> AttentionResult:
        """A copy with every tensor on the CPU."""
        return self._map(lambda t: t.cpu())

    def numpy(self):
        """``weights`` as a NumPy array (float32/float64)."""
        if self.weights is None:
            raise ValueError("this result holds no weights (only topk/entropy were captured)")
        return self.weights.detach().cpu().numpy()

    def to_pandas(self, threshold: float = 0.0, *, skip_padding: bool = True):
        """Long format: one row per (layer, batch, [head,] query, key) with weight > ``threshold``.

        Columns: layer, batch, head (absent when reduced), query, key, weight, and query_token/key_token when
        tokens are known. Padding positions are left out unless ``skip_padding=False``.
        """
        import pandas as pd

        if self.weights is None:
            raise ValueError("this result holds no weights (only topk/entropy were captured)")
        w = self.weights.detach().float().cpu()
        reduced = w.dim() == 4
        if reduced:
            w = w.unsqueeze(2)
        keep = w > threshold
        key_mask = self.key_attention_mask if self.key_attention_mask is not None else self.attention_mask
        if skip_padding and key_mask is not None:
            keep &= key_mask.cpu().bool()[None, :, None, None, :]
        if skip_padding and self.attention_mask is not None:
            pad = self.attention_mask.cpu().bool()  # [batch, query]
            n_q = w.shape[3]
            keep &= pad[:, -n_q:][None, :, None, :, None] if pad.shape[1] >= n_q else True
        idx = keep.nonzero()
        frame = pd.DataFrame(
            {
                "layer": [self.layers[i] for i in idx[:, 0].tolist()],
                "batch": idx[:, 1].numpy(),
                "head": (idx[:, 2] if self.heads is None else torch.tensor(self.heads)[idx[:, 2]]).numpy(),
                "query": idx[:, 3].numpy(),
                "key": idx[:, 4].numpy(),
                "weight": w[keep].numpy(),
            }
        )
        if reduced:
            frame = frame.drop(columns="head")
        key_tokens = self.key_tokens if self.key_tokens is not None else self.tokens
        if self.tokens is not None:
            frame["query_token"] = [self.tokens[b][q] if q < len(self.tokens[b]) else "" for b, q in zip(frame["batch"], frame["query"])]
        if key_tokens is not None:
            frame["key_token"] = [key_tokens[b][k] if k < len(key_tokens[b]) else "" for b, k in zip(frame["batch"], frame["key"])]
        return frame

    # --- views ----------------------------------------------------------------------------------------------
    def view(self, kind: str = "head", *, batch: int = 0, **kwargs):
        """The HTML view: ``kind="head"`` (lines from each token to what it attends, heads selectable; options
        ``top``, ``min_weight``) or ``"model"`` (a layer × head grid of heatmaps, click to enlarge; option ``top``:
        weights kept per query). An option the view does not take raises a TypeError naming the ones it takes."""
        from ..viz import head_view, model_view

        views = {"head": head_view, "model": model_view}
        if kind not in views:
            raise ValueError(f"unknown view {kind!r}: use 'head' or 'model'")
        takes = [name for name in inspect.signature(views[kind]).parameters if name not in ("result", "batch")]
        unknown = sorted(set(kwargs) - set(takes))
        if unknown:
            raise TypeError(f"view({kind!r}) takes batch=, {', '.join(f'{t}=' for t in takes)} "
                            f"but got {', '.join(f'{u}=' for u in unknown)}")
        return views[kind](self, batch=batch, **kwargs)

    def show(self, kind: str = "head", *, batch: int = 0, **kwargs):
        """Display the view in a notebook (an iframe that works in JupyterLab, Notebook and VS Code)."""
        from ..viz import show

        return show(self.view(kind, batch=batch, **kwargs))

    def save_html(self, path, kind: str = "head", *, batch: int = 0, **kwargs):
        """Write the view as one self-contained HTML file; returns its path."""
        return self.view(kind, batch=batch, **kwargs).save_html(path)

    def plot(self, *, batch: int = 0, layer: int | None = None, head: int | None = None):
        """A matplotlib figure (heatmap of one layer and head) for PNG/SVG export."""
        from ..viz.attention import plot

        return plot(self, batch=batch, layer=layer, head=head)

    def __repr__(self) -> str:
        shape = tuple(self.weights.shape) if self.weights is not None else None
        extra = [name for name in ("topk_values", "entropy") if getattr(self, name) is not None]
        stacks = [name for name in ("encoder", "decoder", "cross") if getattr(self, name) is not None]
        return (
            f"AttentionResult(layers={self.layers}, weights={shape}, heads={self.heads}, reduce={self.reduce!r}"
            + (f", method={self.method!r}" if self.method is not None else "")
            + (f", also={extra}" if extra else "")
            + (f", stacks={stacks}" if stacks else "")
            + ")"
        )
