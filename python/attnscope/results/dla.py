"""DLAResult: a target logit split into the direct contributions of the embeddings, heads, MLPs and biases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor

from .export import FigureExport
from .persist import persistable


@persistable
@dataclass
class DLAResult(FigureExport):
    """Direct logit attribution of one call of :func:`attnscope.direct_logit_attribution` (float64).

    Attributes:
        names: component names, in the order of ``values``' last axis: ``embed``, ``L{l}H{h}`` (by="head") or
            ``L{l}.attn`` (by="layer"), ``L{l}.attn_bias`` (output-projection bias), ``L{l}.mlp``,
            ``final_norm.bias`` (LayerNorm beta), ``lm_head.bias``.
        values: ``[batch, components]``. heads: ``[batch, layer, head]`` (NaN for by="layer"). attn, mlp:
            ``[batch, layer]`` per-layer totals (attn includes the output-projection bias).
        logit: ``[batch]`` the explained logit (or logit difference), before any final soft-capping; delta:
            ``[batch]`` logit minus the sum of all contributions (float rounding only).
        positions: ``[batch]`` the position read (each example's last non-padding token).
        target, target_kind ("token" or "contrast"), target_ids ``[batch, T]``; vocab: id -> token string.

    The accessors ``contributions``, ``by_layer`` and ``by_head`` drop the batch axis when the batch holds
    one example.
    """

    # What a loaded result is checked against (attnscope.results.validation).
    SHAPES: ClassVar[dict[str, Any]] = {
        "names": "list component", "values": "float batch component", "heads": "float batch layer head",
        "attn": "float batch layer", "mlp": "float batch layer", "logit": "float batch", "delta": "float batch",
        "target_ids": "int batch target", "tokens": "list batch", "positions": "int batch",
    }

    names: list[str]
    values: Tensor
    heads: Tensor
    attn: Tensor
    mlp: Tensor
    logit: Tensor
    delta: Tensor
    by: str
    target: str
    target_kind: str
    target_ids: Tensor
    tokens: list[list[str]]
    positions: Tensor
    vocab: dict[str, str]

    @property
    def batch(self) -> int:
        return int(self.values.shape[0])

    def _squeeze(self, t: Tensor) -> Tensor:
        return t[0] if self.batch == 1 else t

    @property
    def contributions(self) -> dict[str, Tensor]:
        """Component name -> contribution (a 0-d tensor for one example, else ``[batch]``)."""
        return {n: self._squeeze(self.values[:, i]) for i, n in enumerate(self.names)}

    @property
    def by_head(self) -> Tensor:
        """``[layer, head]`` (``[batch, layer, head]`` for several examples)."""
        return self._squeeze(self.heads)

    @property
    def by_layer(self) -> Tensor:
        """``[layer]`` attention (with its bias) plus MLP of each layer (``[batch, layer]`` for several examples)."""
        return self._squeeze(self.attn + self.mlp)

    def _example(self, example: int) -> int:
        if isinstance(example, bool) or not isinstance(example, int) or not 0 <= example < self.batch:
            raise ValueError(f"example {example!r} out of range: the result holds {self.batch} examples "
                             f"(0..{self.batch - 1})")
        return example

    def top(self, k: int = 10, example: int = 0, *, absolute: bool = True) -> list[tuple[str, float]]:
        """The ``k`` components with the largest contribution (by magnitude, or signed with ``absolute=False``)."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        example = self._example(example)
        pairs = [(n, float(v)) for n, v in zip(self.names, self.values[example].tolist())]
        pairs.sort(key=lambda nv: -abs(nv[1]) if absolute else -nv[1])
        return pairs[:k]

    def to_pandas(self):
        """One row per (example, component): example, component, layer, head, kind, contribution."""
        import pandas as pd

        rows = []
        for b in range(self.batch):
            for name, v in zip(self.names, self.values[b].tolist()):
                layer = head = None
                kind = name
                if name.startswith("L"):
                    left, _, rest = name[1:].partition(".")
                    if "H" in left:
                        layer, head = (int(s) for s in left.split("H"))
                        kind = "head"
                    else:
                        layer, kind = int(left), rest
                rows.append({"example": b, "component": name, "layer": layer, "head": head, "kind": kind,
                             "contribution": v})
        df = pd.DataFrame(rows, columns=["example", "component", "layer", "head", "kind", "contribution"])
        return df.astype({"layer": "Int64", "head": "Int64"})

    def _bars(self, example: int) -> list[tuple[str, float]]:
        return [(n, float(v)) for n, v in zip(self.names, self.values[example].tolist())
                if not (self.by == "head" and n[1:].split(".")[0].count("H"))]

    def plot(self, example: int = 0, *, figsize=None):
        """Matplotlib: the layer x head heatmap (diverging) and bars for the other components. Returns the Figure."""
        try:
            import matplotlib.pyplot as plt
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("DLAResult.plot needs matplotlib: pip install matplotlib") from e
        example = self._example(example)
        bars = self._bars(example)
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=figsize or (10, 1.5 + 0.4 * max(len(bars), self.heads.shape[1])))
        heads = self.heads[example].float().nan_to_num(0.0).numpy()
        lim = max(float(abs(heads).max()), max((abs(v) for _, v in bars), default=0.0), 1e-12)
        im = ax.imshow(heads, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_xticks(range(heads.shape[1]))
        ax.set_yticks(range(heads.shape[0]))
        ax.set_title("heads" if self.by == "head" else "heads (by='layer': not split)")
        fig.colorbar(im, ax=ax)
        ax2.barh([n for n, _ in bars], [v for _, v in bars], color=["#d62728" if v >= 0 else "#1f77b4" for _, v in bars])
        ax2.invert_yaxis()
        ax2.axvline(0, color="#555", lw=0.8)
        ax2.set_title(f"logit {float(self.logit[example]):.3f} ({self.target})")
        fig.tight_layout()
        return fig

    def view(self, example: int = 0):
        """Self-contained HTML: layers x heads heatmap plus bars for the embeddings, MLPs and biases."""
        from ..viz import dla_view

        example = self._example(example)
        heads = [] if self.by != "head" else self.heads[example].tolist()
        return dla_view(heads=heads, layers=[str(i) for i in range(len(heads))], bars=self._bars(example),
                        logit=float(self.logit[example]), delta=float(self.delta[example]),
                        title=f"attnscope · direct logit attribution (target {self.target})")

    def show(self, example: int = 0):
        """Display :meth:`view` in a notebook."""
        from ..viz import show

        return show(self.view(example))

    def save_html(self, path, example: int = 0):
        return self.view(example).save_html(path)

    def __repr__(self) -> str:
        best = ", ".join(f"{n}={v:+.3f}" for n, v in self.top(3))
        return (f"DLAResult({self.batch} examples, {len(self.names)} components by {self.by}, target {self.target}; "
                f"logit {float(self.logit[0]):.4f}, delta {float(self.delta[0]):.2e}; top: {best})")
