"""Global surrogates: a sparse linear model (the C++ lasso) or a shallow decision tree (scikit-learn) on bag-of-features
(token or word presence), fitted to the model's own outputs, with fidelity measured on held-out texts."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from ..viz.figures import bars_svg, frame_html, static_view
from .corpus_stats import check_level

KINDS = ("sparse_linear", "tree")


def presence(examples: Sequence[dict], level: str, vocabulary: Sequence[str]) -> np.ndarray:
    """``[n_examples, len(vocabulary)]`` 0/1: whether each feature occurs in each example."""
    column = {f: j for j, f in enumerate(vocabulary)}
    X = np.zeros((len(examples), len(vocabulary)))
    names = "tokens" if check_level(level) == "tokens" else "words"
    for i, ex in enumerate(examples):
        for feat in ex[names]:
            if feat in column:
                X[i, column[feat]] = 1.0
    return X


def vocabulary_of(examples: Sequence[dict], level: str, special: set[str], min_count: int) -> list[str]:
    """Features present in at least ``min_count`` of ``examples`` (special tokens left out), sorted."""
    names = "tokens" if check_level(level) == "tokens" else "words"
    df: dict[str, int] = {}
    for ex in examples:
        for feat in set(ex[names]) - special:
            df[feat] = df.get(feat, 0) + 1
    return sorted(f for f, c in df.items() if c >= min_count)


def model_outputs(examples: Sequence[dict]) -> tuple[np.ndarray, str]:
    """What the surrogate fits: the logit difference (2 classes), the logits (more classes) or the one logit."""
    logits = [ex.get("logits") for ex in examples]
    if any(v is None for v in logits):
        raise ValueError("the surrogate fits the model's own outputs, and this run stored none: the model returns no "
                         "[batch, classes] logits (use a sequence classifier, e.g. AutoModelForSequenceClassification)")
    y = np.asarray(logits, dtype=float)
    if y.shape[1] == 2:
        return y[:, 1] - y[:, 0], "binary"
    return (y, "multiclass") if y.shape[1] > 2 else (y[:, 0], "regression")


def split(n: int, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {test_size!r}")
    n_test = max(1, int(round(n * test_size)))
    if n - n_test < 2:
        raise ValueError(f"{n} examples are too few to fit a surrogate and hold {n_test} out; pass more texts")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    ss = float(((y - y.mean(0)) ** 2).sum())
    return math.nan if ss == 0 else 1.0 - float(((y - pred) ** 2).sum()) / ss


def decision(values: np.ndarray, task: str) -> np.ndarray:
    """The class an output stands for: the sign of the logit difference, the argmax of the logits."""
    return (values > 0).astype(int) if task == "binary" else values.argmax(1)


def _lasso(X: np.ndarray, y: np.ndarray, alpha: float, max_iter: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Per output column, the lasso's coefficients and intercept (C++ coordinate descent)."""
    from ..ops.solvers import weighted_lasso

    cols = y.reshape(len(y), -1)
    fits = [weighted_lasso(X, cols[:, c], alpha=alpha, max_iter=max_iter) for c in range(cols.shape[1])]
    coef = np.stack([f.coef.numpy() for f in fits], 1)
    return coef, np.asarray([f.intercept for f in fits]), all(f.converged for f in fits)


def _tree(X: np.ndarray, y: np.ndarray, task: str, max_depth: int, seed: int):
    try:
        from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
    except ImportError:
        raise ImportError("kind='tree' fits a scikit-learn decision tree: pip install scikit-learn (or use "
                          "kind='sparse_linear', which needs nothing more)") from None
    if task == "multiclass":
        return DecisionTreeClassifier(max_depth=max_depth, random_state=seed).fit(X, y.argmax(1))
    return DecisionTreeRegressor(max_depth=max_depth, random_state=seed).fit(X, y)


@dataclass
class Surrogate:
    """A global surrogate of the model over a corpus (what :meth:`DatasetAttribution.surrogate` returns).

    Attributes:
        kind: ``sparse_linear`` or ``tree``; level: ``tokens`` or ``words``; task: ``binary`` (fits the logit
            difference class 1 - class 0), ``multiclass`` (one lasso per class logit; a tree classifies the
            predicted class) or ``regression`` (the one logit).
        vocabulary: the features (present in at least ``min_count`` training texts).
        coef: ``[features, outputs]`` lasso coefficients (None for a tree); intercept: ``[outputs]``.
        fidelity: held-out ``r2`` and ``agreement`` (share of held-out texts where the surrogate's class is the
            model's), training ``r2_train``, sizes ``n_train``, ``n_test``, ``n_features``, ``n_nonzero``.
        disagreements: the held-out texts where the surrogate's class differs from the model's.
    """

    kind: str
    level: str
    task: str
    alpha: float
    vocabulary: list[str]
    coef: np.ndarray | None
    intercept: np.ndarray | None
    fidelity: dict
    disagreements: pd.DataFrame
    tree: object = field(default=None, repr=False)

    def predict_features(self, X: np.ndarray) -> np.ndarray:
        """The surrogate's output for presence rows ``X`` ``[n, len(vocabulary)]``."""
        if self.tree is not None:
            return self.tree.predict(X)
        out = X @ self.coef + self.intercept
        return out[:, 0] if self.task != "multiclass" else out

    def predict(self, examples: Sequence[dict]) -> np.ndarray:
        """The surrogate's output for rows of a DatasetAttribution (``ds.examples``)."""
        return self.predict_features(presence(examples, self.level, self.vocabulary))

    def to_pandas(self) -> pd.DataFrame:
        """The non-zero coefficients, largest |coef| first (a tree: its feature importances)."""
        if self.tree is not None:
            imp = pd.DataFrame({"importance": self.tree.feature_importances_}, index=pd.Index(self.vocabulary,
                                                                                           name="feature"))
            return imp[imp["importance"] > 0].sort_values("importance", ascending=False)
        names = ["coef"] if self.coef.shape[1] == 1 else [f"coef_class{c}" for c in range(self.coef.shape[1])]
        table = pd.DataFrame(self.coef, columns=names, index=pd.Index(self.vocabulary, name="feature"))
        table = table[(table != 0).any(axis=1)]
        return table.reindex(table.abs().max(axis=1).sort_values(ascending=False).index)

    def rules(self) -> str:
        """A tree's decision rules as text (scikit-learn's export_text)."""
        if self.tree is None:
            raise ValueError("rules() describes a tree surrogate; this one is sparse_linear (see to_pandas())")
        from sklearn.tree import export_text

        return export_text(self.tree, feature_names=list(self.vocabulary))

    def _fidelity_line(self) -> str:
        f = self.fidelity
        return (f"held-out R² {f['r2']:.4g}, agreement {f['agreement']:.4g} on {f['n_test']} texts (trained on "
                f"{f['n_train']}; training R² {f['r2_train']:.4g}); {f['n_nonzero']} of {f['n_features']} features used")

    def view(self, k: int = 30):
        table = self.to_pandas().head(k)
        parts = [f"<div class=\"ats-caption\">{self._fidelity_line()}</div>"]
        if self.tree is None:
            parts.append(bars_svg([str(f) for f in table.index], list(table.iloc[:, 0]), x_title=table.columns[0]))
        else:
            parts.append(f"<pre class=\"ats-caption\">{html.escape(self.rules())}</pre>")
        parts.append(frame_html(table, caption="coefficients" if self.tree is None else "feature importances"))
        parts.append(frame_html(self.disagreements.head(50), index=False,
                                caption=f"held-out texts where the surrogate disagrees with the model "
                                        f"({len(self.disagreements)})"))
        return static_view(parts, title=f"attnscope · {self.kind} surrogate on {self.level}", count=len(table),
                           height=min(1400, 300 + 40 * len(table)))

    def show(self, k: int = 30):
        from ..viz import show

        return show(self.view(k))

    def plot(self, k: int = 20, ax=None):
        import matplotlib.pyplot as plt

        table = self.to_pandas().head(k)
        ax = ax or plt.subplots(figsize=(6, 0.3 * len(table) + 1.2))[1]
        values = list(table.iloc[:, 0])[::-1]
        ax.barh([str(f) for f in table.index][::-1], values, color=["tab:red" if v >= 0 else "tab:blue" for v in values])
        ax.set_title(self._fidelity_line(), fontsize=8)
        return ax

    def __repr__(self) -> str:
        return f"Surrogate(kind={self.kind!r}, level={self.level!r}, task={self.task!r}, {self._fidelity_line()})"


def fit_surrogate(examples: Sequence[dict], *, kind: str, level: str, alpha: float, special: set[str],
                  test_size: float, seed: int, min_count: int, max_depth: int, max_iter: int) -> Surrogate:
    """Fit a surrogate on a random ``1 - test_size`` of the examples and measure it on the rest."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: use one of {', '.join(map(repr, KINDS))}")
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
    y, task = model_outputs(examples)
    train, test = split(len(examples), test_size, seed)
    vocabulary = vocabulary_of([examples[i] for i in train], level, special, min_count)
    if not vocabulary:
        raise ValueError(f"no {level} occur in {min_count}+ training texts; lower min_count or pass more texts")
    X = presence(examples, level, vocabulary)
    coef = intercept = tree = None
    if kind == "sparse_linear":
        coef, intercept, converged = _lasso(X[train], y[train], float(alpha), max_iter)
    else:
        tree = _tree(X[train], y[train], task, max_depth, seed)
    fit = Surrogate(kind, level, task, float(alpha), vocabulary, coef, intercept, {}, pd.DataFrame(), tree)
    pred = fit.predict_features(X)
    tree_classes = tree is not None and task == "multiclass"
    model_class = decision(y, task) if task != "regression" else None
    sur_class = pred if tree_classes else (decision(pred, task) if task != "regression" else None)
    fit.fidelity = {
        "r2": math.nan if tree_classes else r2(y[test], pred[test]),
        "r2_train": math.nan if tree_classes else r2(y[train], pred[train]),
        "agreement": math.nan if model_class is None else float((model_class[test] == sur_class[test]).mean()),
        "n_train": len(train), "n_test": len(test), "n_features": len(vocabulary),
        "n_nonzero": int((coef != 0).any(1).sum()) if coef is not None else int((tree.feature_importances_ > 0).sum()),
        "converged": bool(converged) if coef is not None else True,
    }
    if model_class is not None:
        wrong = [i for i in test if model_class[i] != sur_class[i]]
        fit.disagreements = pd.DataFrame({
            "index": [examples[i]["index"] for i in wrong], "text": [examples[i]["text"] for i in wrong],
            "model_class": [int(model_class[i]) for i in wrong], "surrogate_class": [int(sur_class[i]) for i in wrong]})
    return fit
