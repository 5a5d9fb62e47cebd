"""DatasetAttribution: per-example attributions over a data set, their global aggregates and views."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic_files import replacing, write_text
from .export import FigureExport
from .persist import persistable

# Per-example columns of to_parquet / to_jsonl / examples_frame, in order.
EXAMPLE_COLUMNS = ("index", "text", "label", "prediction", "probability", "correct", "tokens", "token_ids", "scores",
                   "words", "word_scores", "logits", "delta")


@persistable
@dataclass
class DatasetAttribution(FigureExport):
    """What :func:`attnscope.attribute_dataset` returns.

    Attributes:
        examples: one dict per text: index, text, label (gold, or None), tokens, token_ids, scores (non-padding
            positions), words, word_scores (pieces merged, scores summed), prediction (predicted class for
            classifiers, else None), probability (its softmax probability), logits, delta (path methods).
        method, target: as passed.
        special_tokens: the tokenizer's special tokens (left out of the global views unless asked for).
        class_names: the model's class names by index (config.id2label), to compare with gold labels given as names.
    """

    examples: list[dict]
    method: str
    target: str | None = None
    special_tokens: list[str] = field(default_factory=list)
    class_names: list[str] | None = None

    # --- tables ---------------------------------------------------------------------------------------------------
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

    def examples_frame(self):
        """One row per example with the columns of ``EXAMPLE_COLUMNS`` (lists for tokens, scores, words, logits)."""
        import pandas as pd

        from .corpus_stats import is_correct

        rows = [{**{c: ex.get(c) for c in EXAMPLE_COLUMNS},
                 "correct": is_correct(ex.get("prediction"), ex.get("label"), self.class_names)}
                for ex in self.examples]
        return pd.DataFrame(rows, columns=list(EXAMPLE_COLUMNS))

    def to_parquet(self, path: str | Path) -> Path:
        """Write :meth:`examples_frame` as Parquet (needs pyarrow); ``pandas.read_parquet`` reads it back."""
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ImportError("to_parquet needs pyarrow: pip install pyarrow (or use to_jsonl)") from None
        path = Path(path)
        with replacing(path) as tmp:
            self.examples_frame().to_parquet(tmp, index=False)
        return path

    def to_jsonl(self, path: str | Path) -> Path:
        """Write :meth:`examples_frame`'s rows as JSON lines."""
        import json

        records = self.examples_frame().to_dict(orient="records")
        return write_text(path, "".join(json.dumps(r) + "\n" for r in records))

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

    def occurrences(self, features: str = "tokens", keep_special: bool = False):
        """One row per feature occurrence (example, position, feature, score, prediction, label, correct): the frame
        every global view groups."""
        from .corpus_stats import occurrences

        return occurrences(self.examples, features, self.special_tokens, keep_special, self.class_names)

    # --- global views ---------------------------------------------------------------------------------------------
    def summary(self, features: str = "tokens", k: int = 20, min_count: int = 2, keep_special: bool = False):
        """shap's summary plot for text: the ``k`` features (tokens or words occurring ``min_count``+ times) with the
        largest mean |attribution|, each with the distribution of its attributions over the corpus."""
        from .corpus_stats import summary_table
        from .global_views import SummaryPlot

        frame = self.occurrences(features, keep_special)
        table = summary_table(frame, k, min_count)
        groups = frame.groupby("feature")["score"]
        values = [groups.get_group(f).tolist() for f in table.index]
        return SummaryPlot(table, values, features, self.method)

    def top_features(self, by: str = "label", features: str = "tokens", k: int = 10, min_count: int = 2,
                     keep_special: bool = False):
        """Per gold label (``by="label"``) or predicted class (``by="prediction"``), the ``k`` features with the
        largest mean attribution, with counts and 95% confidence intervals of the mean."""
        from .corpus_stats import group_table
        from .global_views import TopFeatures

        if by not in ("label", "prediction"):
            raise ValueError(f"by={by!r}: use 'label' (gold labels) or 'prediction' (predicted class)")
        frame = self.occurrences(features, keep_special)
        if frame[by].isna().all():
            raise ValueError(f"no example has a {by}: " + ("pass labels= to attribute_dataset" if by == "label" else
                                                          "the model returns no class logits"))
        return TopFeatures(group_table(frame, by, k, min_count), by, features, self.method)

    def errors(self, features: str = "tokens", k: int = 20, min_count: int = 2, keep_special: bool = False):
        """With gold labels: the features that drive wrong predictions vs right ones, the confusion matrix and the
        accuracy."""
        from .corpus_stats import confusion, error_table, is_correct
        from .global_views import ErrorBreakdown

        table = error_table(self.occurrences(features, keep_special), k, min_count)
        judged = [is_correct(ex.get("prediction"), ex.get("label"), self.class_names) for ex in self.examples]
        judged = [j for j in judged if j is not None]
        return ErrorBreakdown(table, confusion(self.examples), sum(judged) / len(judged), features, self.method)

    def agreement(self, other: "DatasetAttribution", k: int = 5):
        """How this run's method agrees with ``other``'s over the same texts: per example Spearman / Pearson, top-k
        overlap and sign agreement; and the rank correlation of the per-token mean |score|."""
        import pandas as pd

        from .corpus_stats import agreement_table
        from .global_views import MethodAgreement

        if not isinstance(other, DatasetAttribution):
            raise TypeError(f"other must be a DatasetAttribution, got {type(other).__name__}")
        table = agreement_table(self.examples, other.examples, k)
        both = pd.concat([self.by_token()["mean_abs_score"], other.by_token()["mean_abs_score"]], axis=1).dropna()
        rho = float(both.iloc[:, 0].corr(both.iloc[:, 1], method="spearman")) if len(both) > 1 else float("nan")
        return MethodAgreement(table, rho, (self.method, other.method))

    def surrogate(self, kind: str = "sparse_linear", features: str = "tokens", alpha: float = 0.01, *,
                  test_size: float = 0.25, seed: int = 0, min_count: int = 2, max_depth: int = 3,
                  max_iter: int = 10000, keep_special: bool = False):
        """A global surrogate of the model's own outputs on bag-of-features (presence of each token or word).

        ``kind="sparse_linear"``: the lasso (C++ coordinate descent, scikit-learn's objective) with penalty
        ``alpha``; ``kind="tree"``: a scikit-learn decision tree of depth ``max_depth``. Fitted on a random
        ``1 - test_size`` of the texts; fidelity (R², agreement with the model's class) is measured on the rest.
        """
        from .surrogate import fit_surrogate

        special = set() if keep_special else set(self.special_tokens)
        return fit_surrogate(self.examples, kind=kind, level=features, alpha=alpha, special=special,
                             test_size=test_size, seed=seed, min_count=min_count, max_depth=max_depth,
                             max_iter=max_iter)

    # --- views ----------------------------------------------------------------------------------------------------
    def token_view(self, limit: int = 50):
        """Token view of the first ``limit`` examples."""
        from ..viz import token_view

        return token_view([{"label": f"#{ex['index']}", "tokens": ex["tokens"], "scores": ex["scores"]}
                           for ex in self.examples[:limit]], title=f"attnscope · {self.method} over a data set")

    def plot(self, limit: int = 50, *, figsize=None):
        """The figure of :meth:`token_view`: the first ``limit`` examples' token scores as a heatmap (rows examples,
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

    def view(self, page_size: int = 50):
        """The corpus report: every example, paged, searchable, sortable by prediction, probability and error."""
        from ..viz.corpus_report import corpus_report

        return corpus_report(self.examples_frame(), title=f"attnscope · {self.method} over {len(self.examples)} texts",
                             page_size=page_size, class_names=self.class_names)

    def show(self, page_size: int = 50):
        from ..viz import show

        return show(self.view(page_size))

    def save_html(self, path, page_size: int = 50):
        return self.view(page_size).save_html(path)

    def __repr__(self) -> str:
        return f"DatasetAttribution(method={self.method!r}, target={self.target!r}, examples={len(self.examples)})"
