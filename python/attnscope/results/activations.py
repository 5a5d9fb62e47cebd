"""ActivationResult: activations per site, and views of the residual stream across layers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .export import FigureExport
from .persist import persistable

_RESIDUAL = ("resid_post", "resid_pre", "resid_mid")


@persistable
@dataclass
class ActivationResult(FigureExport):
    """Activations of one sequence (one forward, or one ``generate()`` assembled along positions).

    Attributes:
        activations: site -> ``Tensor [layer, batch, position, dim]`` (``head_out``: ``[layer, batch, position,
            head, d_head]``; reduce ``"norm"`` drops the last axis, ``"mean"`` the position axis, ``("topk", k)``
            keeps ``k`` values along the last axis, their unit indices in ``topk_indices``).
        layers: layer indices, in the order of the first axis.
        sites: the captured sites; positions: the kept absolute positions (None = all).
        reduce: None, ``"norm"``, ``"mean"`` or ``"topk"``.
        input_ids, attention_mask, tokens: the inputs, when known.
    """

    activations: dict[str, Tensor]
    layers: list[int]
    sites: list[str]
    reduce: str | None = None
    positions: list[int] | None = None
    topk_indices: dict[str, Tensor] = field(default_factory=dict)
    input_ids: Tensor | None = None
    attention_mask: Tensor | None = None
    tokens: list[list[str]] | None = None

    def _site(self, site: str) -> str:
        if site not in self.activations:
            raise KeyError(f"site {site!r} was not captured: this result holds {', '.join(self.sites)}")
        return site

    def get(self, site: str) -> Tensor:
        """The activations of ``site``: ``[layer, batch, position, ...]`` (see the class docstring)."""
        return self.activations[self._site(site)]

    def indices(self, site: str) -> Tensor:
        """The unit indices of a ``("topk", k)`` capture, shaped like :meth:`get`."""
        if site not in self.topk_indices:
            raise KeyError(f"site {self._site(site)!r} holds no top-k indices (reduce={self.reduce!r})")
        return self.topk_indices[site]

    def __getitem__(self, site: str) -> Tensor:
        return self.get(site)

    def _labels(self, batch: int, n: int) -> list[str]:
        if self.tokens is not None and batch < len(self.tokens):
            toks = self.tokens[batch]
            positions = self.positions if self.positions is not None else range(n)
            return [f"{p}:{toks[p]}" if p < len(toks) else str(p) for p in positions][:n]
        positions = self.positions if self.positions is not None else range(n)
        return [str(p) for p in positions][:n]

    # --- residual stream ------------------------------------------------------------------------------------
    def _residual(self, site: str | None) -> tuple[str, Tensor]:
        if self.reduce not in (None, "norm"):
            raise ValueError("residual-stream views need reduce=None or 'norm', this result has "
                             f"reduce={self.reduce!r}")
        if site is None:
            site = next((s for s in _RESIDUAL if s in self.activations), None)
            if site is None:
                raise ValueError(f"no residual-stream site captured (have {', '.join(self.sites)}): capture "
                                 "sites=('resid_post',) for the residual-stream views")
        return site, self.get(site)

    def norms(self, site: str | None = None) -> Tensor:
        """L2 norm of the residual stream per position: ``[layer, batch, position]`` (float32)."""
        site, x = self._residual(site)
        return x.float() if self.reduce == "norm" else x.float().norm(dim=-1)

    def layer_similarity(self, site: str | None = None, batch: int = 0) -> Tensor:
        """Cosine similarity between layers' representations, averaged over the (non-padding) positions of
        ``batch``: ``[layer, layer]``."""
        site, x = self._residual(site)
        if self.reduce == "norm":
            raise ValueError("layer_similarity needs the full vectors (reduce=None)")
        v = torch.nn.functional.normalize(x[:, batch].double(), dim=-1)  # [layer, position, dim]
        cos = torch.einsum("lpd,mpd->lmp", v, v)
        keep = self._valid(batch, v.shape[1])
        return cos[..., keep].mean(-1)

    def _valid(self, batch: int, n: int) -> Tensor:
        if self.attention_mask is None or self.positions is not None:
            return torch.ones(n, dtype=torch.bool)
        return self.attention_mask[batch, :n].cpu() != 0

    def projection(self, site: str | None = None, batch: int = 0) -> Tensor:
        """A 2-D PCA projection of every layer's token representations in one shared basis: ``[layer, position,
        2]``."""
        site, x = self._residual(site)
        if self.reduce == "norm":
            raise ValueError("projection needs the full vectors (reduce=None)")
        v = x[:, batch].double().cpu()  # [layer, position, dim]
        flat = v.reshape(-1, v.shape[-1])
        centred = flat - flat.mean(0)
        _, _, vh = torch.linalg.svd(centred, full_matrices=False)
        return (centred @ vh[:2].T).reshape(v.shape[0], v.shape[1], 2)

    # --- exports and views ----------------------------------------------------------------------------------
    def to_pandas(self):
        """One row per (site, layer, batch, position): the stored value when it is a scalar (``"norm"``), else the
        L2 norm of the vector (``"mean"``: position is -1)."""
        import pandas as pd

        rows = []
        for site, t in self.activations.items():
            t = t.float().cpu()
            if self.reduce == "mean":
                t = t.unsqueeze(2)
            if self.reduce != "norm":
                t = t.flatten(3).norm(dim=-1)
            for li, layer in enumerate(self.layers):
                for b in range(t.shape[1]):
                    labels = self._labels(b, t.shape[2]) if self.reduce != "mean" else ["mean"]
                    for p in range(t.shape[2]):
                        pos = -1 if self.reduce == "mean" else (self.positions[p] if self.positions else p)
                        rows.append({"site": site, "layer": layer, "batch": b, "position": pos, "token": labels[p],
                                     "value" if self.reduce == "norm" else "norm": float(t[li, b, p])})
        return pd.DataFrame(rows)

    def view(self, kind: str = "norms", *, site: str | None = None, batch: int = 0):
        """HTML views of the residual stream: ``"norms"`` (layer × position heatmap of the norm) or
        ``"similarity"`` (layer × layer cosine similarity)."""
        from ..viz import matrix_view

        layers = [str(layer) for layer in self.layers]
        if kind == "norms":
            norms = self.norms(site)[:, batch]
            labels = self._labels(batch, norms.shape[1])
            return matrix_view(norms, layers, labels, row_title="layer", col_title="position",
                               title="attnscope · residual stream norms", token_count=len(labels))
        if kind == "similarity":
            sim = self.layer_similarity(site, batch)
            return matrix_view(sim, layers, layers, row_title="layer", col_title="layer", diverging=True,
                               title="attnscope · residual stream: cosine similarity between layers",
                               token_count=int(self._valid(batch, self.get(self._residual(site)[0]).shape[2]).sum()))
        raise ValueError(f"unknown view {kind!r}: use 'norms' or 'similarity'")

    def show(self, kind: str = "norms", **kwargs: Any):
        from ..viz import show

        return show(self.view(kind, **kwargs))

    def save_html(self, path, kind: str = "norms", **kwargs: Any):
        return self.view(kind, **kwargs).save_html(path)

    def plot(self, kind: str = "norms", *, site: str | None = None, batch: int = 0, figsize=None):
        """Matplotlib figures: ``"norms"`` (a line per layer over positions), ``"similarity"`` (heatmap) or
        ``"projection"`` (a panel per layer: the tokens in a shared 2-D PCA basis)."""
        import matplotlib.pyplot as plt

        if kind == "norms":
            norms = self.norms(site)[:, batch].cpu()
            fig, ax = plt.subplots(figsize=figsize or (8, 4))
            for li, layer in enumerate(self.layers):
                ax.plot(norms[li].numpy(), label=f"layer {layer}")
            ax.set_xlabel("position")
            ax.set_ylabel("L2 norm")
            ax.legend(fontsize="small")
        elif kind == "similarity":
            sim = self.layer_similarity(site, batch).cpu()
            fig, ax = plt.subplots(figsize=figsize or (5, 4))
            im = ax.imshow(sim.numpy(), vmin=-1, vmax=1, cmap="RdBu_r")
            ax.set_xticks(range(len(self.layers)), [str(x) for x in self.layers])
            ax.set_yticks(range(len(self.layers)), [str(x) for x in self.layers])
            ax.set_xlabel("layer")
            ax.set_ylabel("layer")
            fig.colorbar(im, ax=ax)
        elif kind == "projection":
            proj = self.projection(site, batch)
            labels = self._labels(batch, proj.shape[1])
            n = len(self.layers)
            fig, axes = plt.subplots(1, n, figsize=figsize or (3.2 * n, 3.2), squeeze=False, sharex=True,
                                     sharey=True)
            for li, ax in enumerate(axes[0]):
                ax.scatter(proj[li, :, 0].numpy(), proj[li, :, 1].numpy(), s=12)
                for p, text in enumerate(labels):
                    ax.annotate(text, (float(proj[li, p, 0]), float(proj[li, p, 1])), fontsize=6)
                ax.set_title(f"layer {self.layers[li]}")
        else:
            raise ValueError(f"unknown plot {kind!r}: use 'norms', 'similarity' or 'projection'")
        fig.tight_layout()
        return fig

    def __repr__(self) -> str:
        shapes = ", ".join(f"{s}: {tuple(t.shape)}" for s, t in self.activations.items())
        return f"ActivationResult(layers={self.layers}, reduce={self.reduce!r}, {shapes})"
