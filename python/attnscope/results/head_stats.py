"""HeadStats: per-(layer, head) attention statistics pooled over a set of texts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from torch import Tensor

from .export import FigureExport
from .persist import persistable

DESCRIPTIONS = {
    "prev_token": "mean attention from i to i-1",
    "induction": "mean attention from i to i-s+1 on the second copy of a repeated segment",
    "duplicate_token": "mean attention from i to earlier positions with the same token",
    "entropy": "mean entropy of a row (nats)",
    "first_token": "mean attention to the first (non-padding) token",
    "distance": "mean attended distance sum_j p_ij |i-j| (tokens)",
}
_MASSES = ("prev_token", "induction", "duplicate_token", "first_token")


@persistable
@dataclass
class HeadStats(FigureExport):
    """Attention statistics per (layer, head), each a mean over query rows pooled across all texts.

    Attributes:
        scores: statistic name -> ``Tensor [layer, head]`` (float64); NaN where no row qualified.
        counts: statistic name -> number of query rows averaged (the same for every layer and head).
        layers: layer indices, in the order of the first axis.
        n_texts: texts (sequences) seen; n_tokens: non-padding tokens seen.
        segment_len: the repeated segment's length used by ``induction`` (None when it was not computed).
        truncated: how many texts were cut to the model's maximum length.

    See :func:`attnscope.head_stats` for the definition of every statistic.
    """

    scores: dict[str, Tensor]
    counts: dict[str, int]
    layers: list[int]
    n_texts: int
    n_tokens: int
    segment_len: int | None = None
    truncated: int = 0
    meta: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def names(self) -> list[str]:
        """The statistics held, in a fixed order."""
        return list(self.scores)

    @property
    def num_heads(self) -> int:
        return next(iter(self.scores.values())).shape[1]

    def _check(self, stat: str) -> Tensor:
        if stat not in self.scores:
            hint = " (pass induction=True or segment_len=... to head_stats)" if stat == "induction" else ""
            raise KeyError(f"unknown statistic {stat!r}: this HeadStats holds {self.names}{hint}")
        return self.scores[stat]

    def __getitem__(self, stat: str) -> Tensor:
        """``Tensor [layer, head]`` of one statistic."""
        return self._check(stat)

    def top(self, stat: str, k: int = 5, *, largest: bool = True) -> list[tuple[int, int, float]]:
        """The ``k`` heads with the largest (``largest=False``: smallest) ``stat``: ``[(layer, head, score), ...]``."""
        t = self._check(stat)
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        flat = [(self.layers[li], h, float(t[li, h])) for li in range(t.shape[0]) for h in range(t.shape[1])]
        flat = [x for x in flat if not math.isnan(x[2])]
        flat.sort(key=lambda x: (-x[2] if largest else x[2], x[0], x[1]))
        return flat[:k]

    def to_pandas(self):
        """One row per (layer, head), one column per statistic."""
        import pandas as pd

        rows = []
        for li, layer in enumerate(self.layers):
            for h in range(self.num_heads):
                rows.append({"layer": layer, "head": h, **{n: float(t[li, h]) for n, t in self.scores.items()}})
        return pd.DataFrame(rows, columns=["layer", "head", *self.names])

    def plot(self, stats: Sequence[str] | str | None = None, *, cmap: str = "viridis", figsize=None):
        """Matplotlib heatmaps (layer x head), one panel per statistic; returns the Figure."""
        try:
            import matplotlib.pyplot as plt
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("HeadStats.plot needs matplotlib: pip install matplotlib") from e
        names = [stats] if isinstance(stats, str) else list(stats or self.names)
        for n in names:
            self._check(n)
        cols = min(3, len(names))
        rows = math.ceil(len(names) / cols)
        fig, axes = plt.subplots(rows, cols, squeeze=False,
                                 figsize=figsize or (4.0 * cols, 0.6 + 0.45 * len(self.layers) * rows + 1.2 * rows))
        for ax, n in zip(axes.flat, names):
            # Attention masses share one 0..1 scale, so a faint head does not look like a strong one.
            limits = {"vmin": 0.0, "vmax": 1.0} if n in _MASSES else {}
            im = ax.imshow(self.scores[n].float().numpy(), cmap=cmap, aspect="auto", **limits)
            ax.set_title(n)
            ax.set_xlabel("head")
            ax.set_xticks(range(self.num_heads))
            ax.set_ylabel("layer")
            ax.set_yticks(range(len(self.layers)), [str(layer) for layer in self.layers])
            fig.colorbar(im, ax=ax)
        for ax in list(axes.flat)[len(names):]:
            ax.axis("off")
        fig.tight_layout()
        return fig

    def __repr__(self) -> str:
        best = []
        for n in self.names:
            top = self.top(n, 1)
            if top:
                layer, head, v = top[0]
                best.append(f"{n}: L{layer}H{head}={v:.3f}")
        return (f"HeadStats({len(self.layers)} layers x {self.num_heads} heads, {self.n_texts} texts, "
                f"{self.n_tokens} tokens; max {', '.join(best)})")

    # --- views ----------------------------------------------------------------------------------------------
    def view(self, stat: str | None = None):
        """A heatmap view (layer × head) of one statistic (default: the first); hover shows layer, head, value."""
        from ..viz import matrix_view

        name = stat or self.names[0]
        scores = self._check(name).float().nan_to_num(0.0)
        return matrix_view(scores, [str(layer) for layer in self.layers], [str(h) for h in range(scores.shape[1])],
                           row_title="layer", col_title="head", title=f"attnscope · head statistics: {name}",
                           token_count=self.n_tokens)

    def show(self, stat: str | None = None):
        """Display :meth:`view` in a notebook."""
        from ..viz import show

        return show(self.view(stat))

    def save_html(self, path, stat: str | None = None):
        return self.view(stat).save_html(path)

