"""Weights: per-head QK and OV circuits in factored form, their spectra and token readouts, per-layer norms."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor

from .export import FigureExport
from .persist import persistable


class FactoredMatrix:
    """``M = A @ B`` kept as its factors ``A`` ``[m, r]`` and ``B`` ``[r, n]`` (r = d_head, never m × n unless
    asked through :attr:`AB`)."""

    def __init__(self, A: Tensor, B: Tensor) -> None:  # noqa: N803  (the usual names of the factors)
        if A.dim() != 2 or B.dim() != 2 or A.shape[1] != B.shape[0]:
            raise ValueError(f"factors must be [m, r] and [r, n], got {tuple(A.shape)} and {tuple(B.shape)}")
        self.A, self.B = A, B

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.A.shape[0]), int(self.B.shape[1])

    @property
    def AB(self) -> Tensor:  # noqa: N802
        """The explicit product ``[m, n]`` (allocates m × n)."""
        return self.A @ self.B

    def singular_values(self) -> Tensor:
        """The r singular values of ``A @ B``, descending, in float64, from two thin QR factorisations:
        ``A = Qa Ra``, ``B^T = Qb Rb`` give ``A B = Qa (Ra Rb^T) Qb^T`` (an r × r SVD)."""
        _, ra = torch.linalg.qr(self.A.double())
        _, rb = torch.linalg.qr(self.B.double().T)
        return torch.linalg.svdvals(ra @ rb.T)

    def __matmul__(self, other: Tensor) -> Tensor:
        return self.A @ (self.B @ other)

    def __rmatmul__(self, other: Tensor) -> Tensor:
        return (other @ self.A) @ self.B

    def __repr__(self) -> str:
        return f"FactoredMatrix({self.shape[0]} x {self.shape[1]}, rank <= {self.A.shape[1]})"


def _token_names(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    if tokenizer is not None and hasattr(tokenizer, "convert_ids_to_tokens"):
        return [str(t) for t in tokenizer.convert_ids_to_tokens(list(ids))]
    return [str(i) for i in ids]


class Circuit:
    """One head's QK or OV circuit: ``.matrix`` (a :class:`FactoredMatrix` on the residual stream) and token
    readouts ``.token_scores(rows, cols)`` through the embeddings (QK: query token × key token; OV: source token ×
    output token through the unembedding)."""

    def __init__(self, kind: str, layer: int, head: int, matrix: FactoredMatrix, left: Tensor | None,
                 right: Tensor | None) -> None:
        self.kind, self.layer, self.head = kind, layer, head
        self.matrix = matrix
        self._left, self._right = left, right  # [vocab, r] and [r, vocab'] token readout factors

    def _readout(self) -> tuple[Tensor, Tensor]:
        if self._left is None or self._right is None:
            raise ValueError(f"the {self.kind.upper()} circuit has no token readout: the weights hold no embeddings"
                             + (" or no unembedding" if self.kind == "ov" else ""))
        return self._left, self._right

    def token_scores(self, rows: Sequence[int] | None = None, cols: Sequence[int] | None = None) -> Tensor:
        """The token-level matrix for the given token ids (None = the whole vocabulary): ``[rows, cols]``."""
        left, right = self._readout()
        if rows is not None:
            left = left[torch.as_tensor(list(rows), dtype=torch.long)]
        if cols is not None:
            right = right[:, torch.as_tensor(list(cols), dtype=torch.long)]
        return left @ right

    def top_pairs(self, k: int = 10, tokenizer: Any = None, *, chunk: int = 1024) -> list[tuple[str, str, float]]:
        """The ``k`` largest entries of the token-level matrix over the whole vocabulary, computed in row chunks:
        ``[(row token, column token, score), ...]`` (QK: query attends to key; OV: source is copied as output)."""
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        left, right = self._readout()
        best_v = torch.empty(0, dtype=left.dtype)
        best_i = torch.empty(0, dtype=torch.long)
        n_cols = right.shape[1]
        for start in range(0, left.shape[0], chunk):
            scores = (left[start:start + chunk] @ right).flatten()
            v, i = scores.topk(min(k, scores.numel()))
            best_v = torch.cat([best_v, v.cpu()])
            best_i = torch.cat([best_i, i.cpu() + start * n_cols])
            keep = best_v.topk(min(k, best_v.numel()))
            best_v, best_i = keep.values, best_i[keep.indices]
        rows = (best_i // n_cols).tolist()
        cols = (best_i % n_cols).tolist()
        return list(zip(_token_names(tokenizer, rows), _token_names(tokenizer, cols), best_v.tolist()))

    def copying_score(self, *, chunk: int = 1024) -> float:
        """Fraction of row tokens whose largest entry is in their own column (1.0 = a pure copying circuit).
        Meaningful for OV circuits of models whose embedding and unembedding share a vocabulary."""
        left, right = self._readout()
        hits = 0
        for start in range(0, left.shape[0], chunk):
            best = (left[start:start + chunk] @ right).argmax(-1).cpu()
            hits += int((best == torch.arange(start, start + best.shape[0])).sum())
        return hits / left.shape[0]

    def view(self, ids: Sequence[int], tokenizer: Any = None, cols: Sequence[int] | None = None):
        """Heatmap of :meth:`token_scores` for the token ids ``ids`` (rows, and columns unless ``cols``)."""
        from ..viz import matrix_view

        cols = list(ids) if cols is None else list(cols)
        scores = self.token_scores(ids, cols)
        names = ("query", "key") if self.kind == "qk" else ("source", "output")
        return matrix_view(scores, _token_names(tokenizer, ids), _token_names(tokenizer, cols), row_title=names[0],
                           col_title=names[1], diverging=True, token_count=len(cols),
                           title=f"attnscope · {self.kind.upper()} circuit of layer {self.layer}, head {self.head}")

    def __repr__(self) -> str:
        return f"Circuit({self.kind.upper()}, layer {self.layer}, head {self.head}, {self.matrix})"


def apply_norm(x: Tensor, kind: str | None, gain: Tensor | None, bias: Tensor | None, eps: float) -> Tensor:
    """The norm a layer reads its input through, applied row-wise: ``"rms"`` (x / rms · g), ``"rms1p"`` (Gemma:
    x / rms · (1 + g)), ``"layer"`` (LayerNorm) or None (identity)."""
    if kind is None:
        return x
    if kind in ("rms", "rms1p"):
        y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
        return y * (gain if kind == "rms" else 1.0 + gain)
    if kind == "layer":
        y = torch.nn.functional.layer_norm(x, x.shape[-1:], None, None, eps)
        return y * gain + (bias if bias is not None else 0.0)
    raise ValueError(f"unknown norm kind {kind!r}")


def rotate(x: Tensor, positions: Tensor, inv_freq: Tensor, scaling: float = 1.0) -> Tensor:
    """RoPE (the rotate-half convention of Llama and GPT-NeoX) of ``x`` ``[..., n, d_head]`` at ``positions``
    ``[n]``; dimensions past ``2 * len(inv_freq)`` pass through (partial rotary)."""
    freqs = positions.to(inv_freq.dtype)[:, None] * inv_freq[None]
    emb = torch.cat([freqs, freqs], dim=-1)
    cos, sin = (emb.cos() * scaling).to(x.dtype), (emb.sin() * scaling).to(x.dtype)
    rot, rest = x[..., :emb.shape[-1]], x[..., emb.shape[-1]:]
    half = rot.shape[-1] // 2
    rotated = torch.cat([-rot[..., half:], rot[..., :half]], dim=-1)
    return torch.cat([rot * cos + rotated * sin, rest], dim=-1)


@persistable
@dataclass
class Weights(FigureExport):
    """A model's attention weights per head, read for circuits (``ats.weights(model)``).

    Attributes:
        W_Q, W_K, W_V: ``[layer, head, d_model, d_head]`` (GQA: k/v heads repeated to the q heads they serve).
        W_O: ``[layer, head, d_head, d_model]``. Biases are left out of the circuits.
        norm_kind, norm_gain, norm_bias, norm_eps: the norm each layer's attention reads through (``gain`` ``[layer,
            d_model]``; None for post-norm families such as BERT).
        embed: ``[vocab, d_model]`` input embeddings (times the family's embedding scale); unembed: ``[d_model,
            vocab]`` output embeddings with the final norm's gain folded in (None without an LM head).
        inv_freq, rope_scaling: RoPE frequencies (None for models without RoPE); scale: the logit scale per layer.
        matrix_norms: ``[layer, matrix]`` Frobenius norms of every 2-D weight of a layer; matrix_names: their names.
    """

    W_Q: Tensor  # noqa: N815
    W_K: Tensor  # noqa: N815
    W_V: Tensor  # noqa: N815
    W_O: Tensor  # noqa: N815
    layers: list[int]
    matrix_norms: Tensor
    matrix_names: list[str]
    norm_kind: str | None = None
    norm_gain: Tensor | None = None
    norm_bias: Tensor | None = None
    norm_eps: float = 1e-6
    embed: Tensor | None = None
    unembed: Tensor | None = None
    inv_freq: Tensor | None = None
    rope_scaling: float = 1.0
    scale: float = 1.0
    model_type: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def num_heads(self) -> int:
        return int(self.W_Q.shape[1])

    def _index(self, layer: int, head: int) -> int:
        if layer not in self.layers:
            raise ValueError(f"layer {layer} out of range: the weights hold layers {self.layers}")
        if not isinstance(head, int) or not 0 <= head < self.num_heads:
            raise ValueError(f"head {head!r} out of range: layers have {self.num_heads} heads "
                             f"(0..{self.num_heads - 1})")
        return self.layers.index(layer)

    def _gain(self, li: int, fold_norm: bool) -> Tensor | None:
        if not fold_norm or self.norm_gain is None:
            return None
        g = self.norm_gain[li]
        return 1.0 + g if self.norm_kind == "rms1p" else g

    def _fold(self, w: Tensor, li: int, fold_norm: bool) -> Tensor:
        g = self._gain(li, fold_norm)
        return w if g is None else g[:, None] * w

    def _tokens_in(self, li: int) -> Tensor | None:
        """Each token's embedding as the layer's attention reads it when alone in the residual stream."""
        if self.embed is None:
            return None
        bias = self.norm_bias[li] if self.norm_bias is not None else None
        gain = self.norm_gain[li] if self.norm_gain is not None else None
        return apply_norm(self.embed.float(), self.norm_kind, gain, bias, self.norm_eps)

    def qk(self, layer: int, head: int, *, fold_norm: bool = True) -> Circuit:
        """The QK circuit ``W_Q W_K^T`` (``[d_model, d_model]``, factored; logits before ``scale``) with the input
        norm's gain folded in (``fold_norm``); token readout: query token × key token through the normed
        embeddings (no position: see :meth:`positional_qk` for RoPE models)."""
        li = self._index(layer, head)
        wq, wk = self.W_Q[li, head].float(), self.W_K[li, head].float()
        matrix = FactoredMatrix(self._fold(wq, li, fold_norm), self._fold(wk, li, fold_norm).T)
        e = self._tokens_in(li)
        left, right = (None, None) if e is None else (e @ wq, (e @ wk).T)
        return Circuit("qk", layer, head, matrix, left, right)

    def ov(self, layer: int, head: int, *, fold_norm: bool = True) -> Circuit:
        """The OV circuit ``W_V W_O`` (``[d_model, d_model]``, factored) with the input norm's gain folded in;
        token readout: source token (normed embedding) → output token (through the unembedding)."""
        li = self._index(layer, head)
        wv, wo = self.W_V[li, head].float(), self.W_O[li, head].float()
        matrix = FactoredMatrix(self._fold(wv, li, fold_norm), wo)
        e = self._tokens_in(li)
        readout = None if e is None or self.unembed is None else (e @ wv, wo @ self.unembed.float())
        return Circuit("ov", layer, head, matrix, *(readout or (None, None)))

    def spectrum(self, layer: int, head: int, kind: str = "ov") -> Tensor:
        """Singular values (float64, descending) of one head's ``"qk"`` or ``"ov"`` circuit."""
        if kind not in ("qk", "ov"):
            raise ValueError(f"unknown circuit {kind!r}: use 'qk' or 'ov'")
        return (self.qk if kind == "qk" else self.ov)(layer, head).matrix.singular_values()

    def spectra(self, kind: str = "ov") -> Tensor:
        """``[layer, head, d_head]`` singular values of every head's circuit."""
        return torch.stack([torch.stack([self.spectrum(layer, h, kind) for h in range(self.num_heads)])
                            for layer in self.layers])

    def positional_qk(self, layer: int, head: int, max_offset: int = 16, *, tokens: Sequence[int] | None = None
                      ) -> Tensor:
        """RoPE-aware positional QK score ``[max_offset]``: for Δ = 1..max_offset, the scaled logit
        ``q(t)·R(Δ)·k(t')`` of a query Δ positions after its key, averaged over all token pairs (t, t') of the
        vocabulary (or ``tokens``): ``mean_t q(t)`` rotated to position Δ against ``mean_t' k(t')`` at 0."""
        li = self._index(layer, head)
        if self.inv_freq is None:
            raise ValueError(f"positional_qk needs a RoPE model; this one ({self.model_type}) has none (its QK circuit "
                             "through the position embeddings is a plain matrix)")
        if not isinstance(max_offset, int) or max_offset < 1:
            raise ValueError(f"max_offset must be a positive integer, got {max_offset!r}")
        e = self._tokens_in(li)
        if e is None:
            raise ValueError("positional_qk needs the embeddings (the weights hold none)")
        if tokens is not None:
            e = e[torch.as_tensor(list(tokens), dtype=torch.long)]
        q = (e @ self.W_Q[li, head].float()).double().mean(0)
        k = (e @ self.W_K[li, head].float()).double().mean(0)
        offsets = torch.arange(1, max_offset + 1)
        q_rot = rotate(q.expand(max_offset, -1), offsets, self.inv_freq.double(), self.rope_scaling)
        k_rot = rotate(k[None], torch.zeros(1, dtype=torch.long), self.inv_freq.double(), self.rope_scaling)
        return (q_rot @ k_rot[0]) * self.scale

    # --- exports and views ----------------------------------------------------------------------------------
    def to_pandas(self):
        """One row per (layer, matrix): its Frobenius norm."""
        import pandas as pd

        return pd.DataFrame([{"layer": layer, "matrix": name, "norm": float(self.matrix_norms[li, j])}
                             for li, layer in enumerate(self.layers) for j, name in enumerate(self.matrix_names)])

    def view(self, kind: str = "norms", circuit: str = "ov"):
        """``"norms"``: layer × matrix heatmap of the weight norms; ``"spectrum"``: (layer, head) × singular value
        index heatmap of one circuit's spectra (``circuit="qk"`` or ``"ov"``)."""
        from ..viz import matrix_view

        if kind == "norms":
            return matrix_view(self.matrix_norms, [str(x) for x in self.layers], self.matrix_names,
                               row_title="layer", col_title="matrix", title="attnscope · weight norms",
                               token_count=len(self.matrix_names))
        if kind == "spectrum":
            s = self.spectra(circuit)
            rows = [f"L{layer}H{h}" for layer in self.layers for h in range(self.num_heads)]
            return matrix_view(s.reshape(len(rows), -1), rows, [str(i) for i in range(s.shape[-1])],
                               row_title="head", col_title="singular value", token_count=s.shape[-1],
                               title=f"attnscope · {circuit.upper()} spectra")
        raise ValueError(f"unknown view {kind!r}: use 'norms' or 'spectrum'")

    def show(self, kind: str = "norms", **kwargs: Any):
        from ..viz import show

        return show(self.view(kind, **kwargs))

    def save_html(self, path, kind: str = "norms", **kwargs: Any):
        return self.view(kind, **kwargs).save_html(path)

    def plot(self, circuit: str = "ov", *, figsize=None):
        """Matplotlib: the singular values of every head's circuit, a panel per layer (log scale)."""
        import matplotlib.pyplot as plt

        s = self.spectra(circuit)
        cols = min(4, len(self.layers))
        rows = math.ceil(len(self.layers) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=figsize or (3.5 * cols, 3 * rows), squeeze=False)
        for li, ax in zip(range(len(self.layers)), axes.flat):
            for h in range(self.num_heads):
                ax.semilogy(s[li, h].numpy(), label=f"head {h}")
            ax.set_title(f"layer {self.layers[li]} {circuit.upper()}")
            ax.set_xlabel("index")
        for ax in list(axes.flat)[len(self.layers):]:
            ax.axis("off")
        axes.flat[0].legend(fontsize="small")
        fig.tight_layout()
        return fig

    def __repr__(self) -> str:
        return (f"Weights({self.model_type}: {len(self.layers)} layers x {self.num_heads} heads, d_model "
                f"{self.W_Q.shape[2]}, d_head {self.W_Q.shape[3]}, rope={self.inv_freq is not None})")
