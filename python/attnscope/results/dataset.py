"""DatasetAttribution: per-example attributions over a data set and their global aggregates."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from .export import FigureExport
from .persist import persistable


@persistable
@dataclass
class DatasetAttribution(FigureExport):
    """What :func:`attnscope.attribute_dataset` returns.

    Attributes:
        examples: one dict per text: index, text, tokens, token_ids, scores (non-padding positions), prediction
            (predicted class for classifiers, else None), delta (path methods).
        method, target: as passed.
    """

    examples: list[dict]
    method: str
    target: str | None = None

    def to_pandas(self):
        """Long table: one row per (example, position) with token, token_id, score, prediction."""
        import pandas as pd

        rows = [
            {"example": ex["index"], "position": p, "token": tok, "token_id": tid, "score": score,
             "prediction": ex.get("prediction")}
            for ex in self.examples
            for p, (tok, tid, score) in enumerate(zip(ex["tokens"], ex["token_ids"], ex["scores"]))
        ]
        return pd.DataFrame(rows, columns=["example", "position", "token", "token_id", "score", "prediction"])

    def by_token(self):
        """Mean |attribution| per vocabulary item (token), with its count; largest first."""
        frame = self.to_pandas().assign(abs_score=lambda f: f["score"].abs())
        table = frame.groupby("token")["abs_score"].agg(["mean", "count"]).rename(columns={"mean": "mean_abs_score"})
        return table.sort_values("mean_abs_score", ascending=False)

    def by_position(self):
        """Mean |attribution| per position, with its count."""
        frame = self.to_pandas().assign(abs_score=lambda f: f["score"].abs())
        return frame.groupby("position")["abs_score"].agg(["mean", "count"]).rename(columns={"mean": "mean_abs_score"})

    def top_tokens_per_class(self, k: int = 10) -> dict[int, list[tuple[str, float]]]:
        """For classifiers: per predicted class, the ``k`` tokens with the largest mean attribution."""
        sums: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for ex in self.examples:
            if ex.get("prediction") is None:
                continue
            for tok, score in zip(ex["tokens"], ex["scores"]):
                sums[ex["prediction"]][tok].append(score)
        return {
            cls: sorted(((t, sum(v) / len(v)) for t, v in toks.items()), key=lambda x: -x[1])[:k]
            for cls, toks in sorted(sums.items())
        }

    def view(self, limit: int = 50):
        """Token view of the first ``limit`` examples."""
        from ..viz import token_view

        return token_view([{"label": f"#{ex['index']}", "tokens": ex["tokens"], "scores": ex["scores"]}
                           for ex in self.examples[:limit]], title=f"attnscope · {self.method} over a data set")

    def plot(self, limit: int = 50, *, figsize=None):
        """The figure of :meth:`view`: the first ``limit`` examples' token scores as a heatmap (rows examples,
        columns positions, symmetric diverging colours, blank past an example's end)."""
        import matplotlib.pyplot as plt
        import numpy as np

        shown = self.examples[:limit]
        width = max((len(ex["scores"]) for ex in shown), default=1)
        grid = np.full((max(len(shown), 1), width), np.nan)
        for i, ex in enumerate(shown):
            grid[i, : len(ex["scores"])] = ex["scores"]
        top = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0
        fig, ax = plt.subplots(figsize=figsize or (max(4, 0.25 * width + 2), max(2.5, 0.3 * len(shown) + 1.5)))
        image = ax.imshow(grid, cmap="bwr", vmin=-top, vmax=top, aspect="auto")
        ax.set_yticks(range(len(shown)), [f"#{ex['index']}" for ex in shown], fontsize=7)
        ax.set_xlabel("position")
        ax.set_title(f"{self.method} over a data set")
        fig.colorbar(image, ax=ax, fraction=0.046)
        fig.tight_layout()
        return fig

    def show(self, limit: int = 50):
        from ..viz import show

        return show(self.view(limit))

    def save_html(self, path, limit: int = 50):
        return self.view(limit).save_html(path)

    def __repr__(self) -> str:
        return f"DatasetAttribution(method={self.method!r}, target={self.target!r}, examples={len(self.examples)})"
