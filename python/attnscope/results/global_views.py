"""Global views of a data set's attributions: what :class:`DatasetAttribution`'s ``summary()``, ``top_features()``,
``errors()`` and ``agreement()`` return. Each has ``.to_pandas()``, ``.view()``/``.show()`` (static HTML: SVG and
tables) and ``.plot()`` (matplotlib)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..viz.figures import bars_svg, frame_html, static_view, summary_svg


class _GlobalView:
    title = "attnscope"

    def to_pandas(self) -> pd.DataFrame:
        return self.table.copy()

    def show(self):
        from ..viz import show

        return show(self.view())

    def save_html(self, path):
        return self.view().save_html(path)

    def _repr_html_(self) -> str:
        return self.view()._repr_html_()


@dataclass
class SummaryPlot(_GlobalView):
    """Per feature (token or word), the distribution of its attributions over the corpus, ordered by mean |score|
    (shap's summary plot). ``table``: mean_abs_score, mean_score, count, q05, median, q95 per feature;
    ``values``: each feature's scores, one per occurrence, in the table's order."""

    table: pd.DataFrame
    values: list[list[float]]
    level: str
    method: str

    def view(self, max_points: int = 300):
        features = [str(f) for f in self.table.index]
        svg = summary_svg(features, self.values, max_points=max_points, x_title=f"{self.method} attribution")
        return static_view([svg, frame_html(self.table, caption="per feature, largest mean |score| first")],
                           title=f"attnscope · summary of {self.method} over the corpus ({self.level})",
                           count=len(features), height=min(1200, 120 + 22 * len(features) + 24 * len(features)))

    def plot(self, ax=None):
        import matplotlib.pyplot as plt
        import numpy as np

        ax = ax or plt.subplots(figsize=(7, 0.35 * len(self.values) + 1.2))[1]
        rng = np.random.default_rng(0)
        for r, vs in enumerate(self.values):
            y = len(self.values) - 1 - r + rng.uniform(-0.3, 0.3, len(vs))
            ax.scatter(vs, y, s=6, c=np.where(np.asarray(vs) >= 0, "tab:red", "tab:blue"), alpha=0.5)
        ax.set_yticks(range(len(self.values)), [str(f) for f in self.table.index][::-1])
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_xlabel(f"{self.method} attribution")
        ax.set_title(f"summary over the corpus ({self.level})")
        return ax


@dataclass
class TopFeatures(_GlobalView):
    """Per group (gold label or predicted class) the features with the largest mean score: ``table`` with group,
    feature, mean, count, std, ci_low, ci_high (normal 95% interval of the mean)."""

    table: pd.DataFrame
    by: str
    level: str
    method: str

    def view(self):
        parts = []
        for group, part in self.table.groupby("group", sort=True):
            labels = [f"{f} (n={c})" for f, c in zip(part["feature"], part["count"])]
            parts.append(f"<h3 class=\"ats-caption\">{self.by} {group}</h3>")
            parts.append(bars_svg(labels, list(part["mean"]), lows=list(part["ci_low"]), highs=list(part["ci_high"]),
                                  x_title="mean attribution (95% interval)"))
        parts.append(frame_html(self.table, index=False))
        return static_view(parts, title=f"attnscope · top {self.level} per {self.by} ({self.method})",
                           count=len(self.table), height=min(1400, 200 + 40 * len(self.table)))

    def plot(self):
        import matplotlib.pyplot as plt

        groups = list(self.table.groupby("group", sort=True))
        fig, axes = plt.subplots(1, len(groups), figsize=(4 * len(groups), 0.35 * self.table.groupby("group").size()
                                                          .max() + 1.2), squeeze=False)
        for ax, (group, part) in zip(axes[0], groups):
            err = [part["mean"] - part["ci_low"], part["ci_high"] - part["mean"]]
            ax.barh(list(part["feature"])[::-1], list(part["mean"])[::-1], xerr=[e[::-1] for e in err],
                    color="tab:red")
            ax.set_title(f"{self.by} {group}")
        return fig


@dataclass
class ErrorBreakdown(_GlobalView):
    """Features that drive wrong predictions vs right ones: ``table`` per feature with mean_wrong, count_wrong,
    mean_right, count_right, difference; ``confusion`` gold label x prediction counts; ``accuracy``."""

    table: pd.DataFrame
    confusion: pd.DataFrame
    accuracy: float
    level: str
    method: str

    def view(self):
        labels = [f"{f} (n={c})" for f, c in zip(self.table.index, self.table["count_wrong"])]
        parts = [f"<div class=\"ats-caption\">accuracy {self.accuracy:.4g} over the examples with a gold label</div>",
                 bars_svg(labels, list(self.table["mean_wrong"]), x_title="mean attribution in wrong predictions"),
                 frame_html(self.table, caption="per feature: wrong vs right predictions"),
                 frame_html(self.confusion, caption="gold label (rows) x prediction (columns)")]
        return static_view(parts, title=f"attnscope · what drives the errors ({self.method}, {self.level})",
                           count=len(self.table), height=min(1400, 300 + 44 * len(self.table)))

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        ax = ax or plt.subplots(figsize=(7, 0.35 * len(self.table) + 1.2))[1]
        names = [str(f) for f in self.table.index][::-1]
        ax.barh(names, list(self.table["mean_wrong"])[::-1], height=0.4, label="wrong", color="tab:red")
        ax.barh([n + " " for n in names], list(self.table["mean_right"].fillna(0))[::-1], height=0.4, label="right",
                color="tab:green")
        ax.legend()
        ax.set_title(f"accuracy {self.accuracy:.3g}: mean attribution in wrong vs right predictions")
        return ax


@dataclass
class MethodAgreement(_GlobalView):
    """How two methods agree over a corpus. ``table``: per example spearman, pearson, top-k overlap and sign
    agreement; ``feature_spearman``: rank correlation of the two methods' per-token mean |score| rankings."""

    table: pd.DataFrame
    feature_spearman: float
    methods: tuple[str, str]

    def summary(self) -> pd.DataFrame:
        """Mean and median of each per-example measure."""
        return self.table.drop(columns=["example", "n_tokens"]).agg(["mean", "median"])

    def view(self):
        a, b = self.methods
        parts = [f"<div class=\"ats-caption\">{a} vs {b} over {len(self.table)} examples; rank correlation of the "
                 f"per-token mean |score|: {self.feature_spearman:.4g}</div>",
                 frame_html(self.summary(), caption="per-example agreement, mean and median"),
                 bars_svg([str(e) for e in self.table["example"][:40]], list(self.table["spearman"].fillna(0)[:40]),
                          x_title="Spearman per example (first 40)")]
        return static_view(parts, title=f"attnscope · agreement of {a} and {b}", count=len(self.table), height=700)

    def plot(self, ax=None):
        import matplotlib.pyplot as plt

        ax = ax or plt.subplots(figsize=(6, 3.5))[1]
        ax.hist(self.table["spearman"].dropna(), bins=20, color="tab:blue")
        ax.set_xlabel("Spearman correlation per example")
        ax.set_title(f"{self.methods[0]} vs {self.methods[1]}")
        return ax
