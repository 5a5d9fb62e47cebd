"""Results of the embedding-space questions: nearest tokens (or top unembedded tokens) and 2-D projections."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor

from .export import FigureExport
from .persist import persistable


@persistable
@dataclass
class TokenNeighbors(FigureExport):
    """The top tokens for each query (a token's cosine neighbours, or a vector's top tokens by logit).

    Attributes:
        queries: one label per query (the token string, or ``"vector i"`` for ``unembed``).
        query_ids: ``[query]`` token ids of the queries, or None for vectors.
        ids: ``[query, k]`` token ids, best first.
        scores: ``[query, k]`` cosine similarities (``metric="cosine"``) or logits (``metric="logit"``), float64.
        tokens: ``[query][k]`` token strings of ``ids``.
        space: "input" (word embeddings) or "output" (unembedding rows).
        metric: "cosine" or "logit".
    """

    # What a loaded result is checked against (attnscope.results.validation).
    SHAPES: ClassVar[dict[str, Any]] = {
        "queries": "list query", "query_ids": "int query", "ids": "int query k", "scores": "float query k",
        "tokens": "list query",
    }

    queries: list[str]
    query_ids: Tensor | None
    ids: Tensor
    scores: Tensor
    tokens: list[list[str]]
    space: str
    metric: str

    def to_pandas(self):
        """One row per (query, rank): query, rank (1 = best), token, id, score."""
        import pandas as pd

        rows = [
            {"query": q, "rank": r + 1, "token": self.tokens[qi][r], "id": int(self.ids[qi, r]),
             "score": float(self.scores[qi, r])}
            for qi, q in enumerate(self.queries) for r in range(self.ids.shape[1])
        ]
        return pd.DataFrame(rows, columns=["query", "rank", "token", "id", "score"])

    def view(self):
        """An HTML table per query: rank, token, id and score."""
        from ..viz.readable import readable_tokens
        from ..viz.table import table_view

        shown = [readable_tokens(row) for row in self.tokens]  # token pieces as text (Ġcat -> ' cat')
        tables = [{"title": f"{q} ({self.space} space, {self.metric})",
                   "columns": ["rank", "token", "id", self.metric],
                   "rows": [[str(r + 1), shown[qi][r], str(int(self.ids[qi, r])),
                             f"{float(self.scores[qi, r]):.4f}"] for r in range(self.ids.shape[1])]}
                  for qi, q in enumerate(self.queries)]
        return table_view(tables, title="attnscope · token neighbours", token_count=int(self.ids.numel()))

    def show(self):
        """Display the table in a notebook."""
        from ..viz import show

        return show(self.view())

    def save_html(self, path):
        """Write the table as one self-contained HTML file; returns its path."""
        return self.view().save_html(path)

    def plot(self, query: int = 0):
        """Horizontal bars of one query's scores (best on top)."""
        import matplotlib.pyplot as plt

        if not 0 <= query < len(self.queries):
            raise ValueError(f"query {query} out of range: this result has {len(self.queries)} queries "
                             f"(0..{len(self.queries) - 1})")
        k = self.ids.shape[1]
        fig, ax = plt.subplots(figsize=(5, max(2.0, 0.3 * k + 1)))
        ax.barh(range(k)[::-1], self.scores[query].tolist(), color="#4a78c2")
        ax.set_yticks(range(k)[::-1], self.tokens[query], fontsize=8)
        ax.set_xlabel(self.metric)
        ax.set_title(f"{self.queries[query]} ({self.space} space)")
        fig.tight_layout()
        return fig


@persistable
@dataclass
class EmbeddingProjection(FigureExport):
    """Tokens placed in 2-D by a projection of their embedding rows.

    Attributes:
        tokens: token strings; ids: ``[n]`` token ids.
        coords: ``[n, 2]`` coordinates (float64).
        explained: ``[2]`` share of the variance of the centred rows each axis explains.
        space: "input" or "output"; method: "pca".
    """

    # What a loaded result is checked against (attnscope.results.validation).
    SHAPES: ClassVar[dict[str, Any]] = {"tokens": "list n", "ids": "int n", "coords": "float n xy", "explained": "float xy"}

    tokens: list[str]
    ids: Tensor
    coords: Tensor
    explained: Tensor
    space: str
    method: str

    def _axis(self, i: int) -> str:
        return f"PC{i + 1} ({100 * float(self.explained[i]):.1f} %)"

    def to_pandas(self):
        """One row per token: token, id, x, y."""
        import pandas as pd

        return pd.DataFrame({"token": self.tokens, "id": self.ids.tolist(), "x": self.coords[:, 0].tolist(),
                             "y": self.coords[:, 1].tolist()})

    def view(self):
        """An HTML scatter plot with one labelled point per token (hover shows the coordinates)."""
        from ..viz.readable import readable_tokens
        from ..viz.scatter import scatter_view

        return scatter_view(self.coords, readable_tokens(self.tokens), x_title=self._axis(0), y_title=self._axis(1),
                            title=f"attnscope · {self.method} of {self.space} embeddings")

    def show(self):
        """Display the scatter plot in a notebook."""
        from ..viz import show

        return show(self.view())

    def save_html(self, path):
        """Write the scatter plot as one self-contained HTML file; returns its path."""
        return self.view().save_html(path)

    def plot(self):
        """A matplotlib scatter plot with token labels."""
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 5))
        ax.scatter(self.coords[:, 0].tolist(), self.coords[:, 1].tolist(), s=14, color="#4a78c2")
        for token, (x, y) in zip(self.tokens, self.coords.tolist()):
            ax.annotate(token, (x, y), fontsize=8, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(self._axis(0))
        ax.set_ylabel(self._axis(1))
        ax.set_title(f"{self.method.upper()} of {self.space} embeddings")
        fig.tight_layout()
        return fig


__all__ = ["EmbeddingProjection", "TokenNeighbors"]
