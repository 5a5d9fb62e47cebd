"""EvaluationResult and BenchmarkResult: how good explanations are, per example and across methods."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from torch import Tensor

from .export import FigureExport
from .persist import persistable

__all__ = ["BenchmarkResult", "EvaluationResult", "mean_ci"]

# Student t 0.975 quantiles for 1..30 degrees of freedom (two-sided 95% intervals).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def _t975(df: int) -> float:
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964  # Cornish-Fisher expansion of the t quantile around the normal one
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_ci(values: list[float]) -> tuple[float, float, int]:
    """Mean of the finite values, half-width of its 95% Student-t interval (NaN for fewer than 2), and their count."""
    finite = [float(v) for v in values if math.isfinite(float(v))]
    n = len(finite)
    if n == 0:
        return float("nan"), float("nan"), 0
    mean = sum(finite) / n
    if n < 2:
        return mean, float("nan"), n
    sd = math.sqrt(sum((v - mean) ** 2 for v in finite) / (n - 1))
    return mean, _t975(n - 1) * sd / math.sqrt(n), n


def _higher(name: str) -> bool:
    """Whether a larger value is better (runtime: smaller is), from the metric catalog."""
    if name == "runtime_s":
        return False
    from ..quality.metrics import get

    return get(name).higher_is_better


@persistable
@dataclass
class EvaluationResult(FigureExport):
    """What :func:`attnscope.evaluate` returns.

    Attributes:
        values: metric name -> ``[batch]`` float64, one value per example (per generated token for a
            GenerationAttribution); NaN where a metric is undefined (tau against constant scores); AOPC is 0 when
            no feature has a positive score (ferret's convention).
        curves: curve metric (deletion, deletion_lerf, insertion) -> per example the target values after removing
            (inserting) 0, 1, ..., n features.
        per_layer: randomisation checks -> ``[batch, steps]`` |Spearman rho| per block randomised (top block first).
        method, target: the explanation evaluated. tokens, attention_mask: the evaluated rows.
        n_forwards: ``[batch]`` model rows run for the faithfulness metrics; kv_reuse: whether the prefix cache
            was reused. settings: removal, score and the rationale rules used. row_labels: names of the rows.
    """

    values: dict
    curves: dict
    per_layer: dict
    method: str
    target: str
    tokens: list
    attention_mask: Tensor
    n_forwards: Tensor
    kv_reuse: bool
    settings: dict = field(default_factory=dict)
    row_labels: list | None = None

    def __repr__(self) -> str:
        means = ", ".join(f"{k}={v:.4g}" for k, v in self.summary().items())
        return f"EvaluationResult(method={self.method!r}, rows={len(self.tokens)}, {means})"

    def _labels(self) -> list[str]:
        return list(self.row_labels) if self.row_labels else [f"example {i}" for i in range(len(self.tokens))]

    def summary(self) -> dict[str, float]:
        """Mean of each metric over the rows (NaN rows left out)."""
        return {k: mean_ci(v.tolist())[0] for k, v in self.values.items()}

    def to_pandas(self):
        """Long table: one row per (example, metric) with the value, the method and whether higher is better."""
        import pandas as pd

        labels = self._labels()
        return pd.DataFrame([{"example": i, "label": labels[i], "metric": k, "value": float(v[i]),
                              "higher_is_better": _higher(k), "method": self.method} for k, v in self.values.items()
                             for i in range(v.shape[0])])

    def view(self):
        """A table of rows × metrics, each column coloured worst (red) to best (green)."""
        from ..viz.score_table import score_table_view

        names = list(self.values)
        rows = self._labels()
        values = [[float(self.values[k][i]) for k in names] for i in range(len(rows))]
        return score_table_view(rows, names, values, higher_is_better=[_higher(k) for k in names],
                          title=f"attnscope · explanation quality · {self.method} · target {self.target}",
                          note=f"settings: {self.settings}")

    def show(self):
        from ..viz import show

        return show(self.view())

    def save_html(self, path):
        return self.view().save_html(path)

    def plot(self, example: int = 0):
        """The deletion / insertion curves of one row (fraction of features removed or inserted vs target value);
        a bar chart of the metric values when no curve was computed."""
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.2))
        if self.curves:
            for name, curves in self.curves.items():
                c = curves[example].double()
                ax.plot([k / max(1, c.numel() - 1) for k in range(c.numel())], c.tolist(), marker=".", label=name)
            ax.set_xlabel("fraction of features removed (inserted)")
            ax.set_ylabel(str(self.settings.get("score", "value")))
            ax.legend()
        else:
            names = list(self.values)
            ax.bar(range(len(names)), [float(self.values[k][example]) for k in names])
            ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_title(f"{self.method} · {self._labels()[example]}")
        fig.tight_layout()
        return fig


@persistable
@dataclass
class BenchmarkResult(FigureExport):
    """What :func:`attnscope.benchmark` returns: every method × every metric over a set of texts.

    Attributes:
        records: one dict per (method, text, metric): ``method``, ``text`` (index), ``metric``, ``value``; the
            metric ``runtime_s`` is the attribution's wall time per text.
        methods, metrics: in the order asked. n_texts: texts scored. settings: what evaluate was given.
    """

    records: list
    methods: list
    metrics: list
    n_texts: int
    settings: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"BenchmarkResult(methods={self.methods}, metrics={self.metrics}, texts={self.n_texts})"

    def _columns(self) -> list[str]:
        return [*self.metrics, "runtime_s"]

    def table(self) -> dict[tuple[str, str], tuple[float, float, int]]:
        """(method, metric) -> (mean, 95% CI half-width, n)."""
        grouped: dict[tuple[str, str], list[float]] = {}
        for r in self.records:
            grouped.setdefault((r["method"], r["metric"]), []).append(float(r["value"]))
        return {key: mean_ci(vals) for key, vals in grouped.items()}

    def best(self) -> dict[str, str]:
        """Per metric, the method with the best mean (by the metric's direction)."""
        t = self.table()
        out = {}
        for metric in self._columns():
            scored = [(t[(m, metric)][0], m) for m in self.methods if (m, metric) in t and math.isfinite(t[(m, metric)][0])]
            if scored:
                out[metric] = (max if _higher(metric) else min)(scored)[1]
        return out

    def to_pandas(self, long: bool = False):
        """Summary: one row per method × metric with mean, ci95 (half-width), n and higher_is_better; ``long=True``
        gives every (method, text, metric) value."""
        import pandas as pd

        if long:
            return pd.DataFrame(self.records)
        t = self.table()
        return pd.DataFrame([{"method": m, "metric": k, "mean": t[(m, k)][0], "ci95": t[(m, k)][1], "n": t[(m, k)][2],
                              "higher_is_better": _higher(k)} for m in self.methods for k in self._columns()
                             if (m, k) in t])

    def view(self):
        """Colour-coded table: methods × metrics, mean ± 95% CI, best per metric marked."""
        from ..viz.score_table import score_table_view

        t = self.table()
        cols = self._columns()
        nan = (float("nan"), float("nan"), 0)
        values = [[t.get((m, k), nan)[0] for k in cols] for m in self.methods]
        text = [[f"{t.get((m, k), nan)[0]:.4g} ± {t.get((m, k), nan)[1]:.2g}" for k in cols] for m in self.methods]
        return score_table_view(self.methods, cols, values, higher_is_better=[_higher(k) for k in cols], text=text,
                          title=f"attnscope · benchmark over {self.n_texts} texts",
                          note="mean ± 95% CI half-width over the texts; the best method of each metric is starred")

    def show(self):
        from ..viz import show

        return show(self.view())

    def save_html(self, path):
        return self.view().save_html(path)

    def plot(self):
        """One panel per metric: mean with its 95% interval per method."""
        import matplotlib.pyplot as plt

        t = self.table()
        cols = self._columns()
        fig, axes = plt.subplots(1, len(cols), figsize=(2.6 * len(cols) + 1, 3), squeeze=False)
        for ax, k in zip(axes[0], cols):
            means = [t.get((m, k), (float("nan"),) * 2)[0] for m in self.methods]
            errs = [t.get((m, k), (float("nan"),) * 2)[1] for m in self.methods]
            ax.bar(range(len(self.methods)), means, yerr=[0 if not math.isfinite(e) else e for e in errs],
                   color="#4c72b0", capsize=3)
            ax.set_xticks(range(len(self.methods)), self.methods, rotation=60, ha="right", fontsize=7)
            ax.set_title(f"{k} {'↑' if _higher(k) else '↓'}", fontsize=9)
        fig.tight_layout()
        return fig
