"""The metric catalog: every quality metric with its family, its direction and what it needs.

Torch-free, so ``ats.list_metrics()`` answers without importing torch. ``evaluate`` and ``benchmark`` look names up
here; a new metric adds an entry here and its computation in the module of its family.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["FAMILIES", "METRICS", "MetricSpec", "default_metrics", "get", "list_metrics", "names", "resolve_metrics"]

FAMILIES = ("faithfulness", "robustness", "plausibility", "sanity")


@dataclass(frozen=True)
class MetricSpec:
    """One metric: ``higher_is_better`` orders methods in a benchmark; ``needs`` names the arguments it requires
    (``rationale``, ``labels``, ``method``: a re-run of the attribution method)."""

    name: str
    family: str
    higher_is_better: bool
    summary: str
    needs: tuple[str, ...] = ()
    generation: bool = False  # computed per generated token for a GenerationAttribution


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("comprehensiveness", "faithfulness", True,
               "AOPC of p(x) - p(x without the top features), over removal fractions (ERASER, ferret)", generation=True),
    MetricSpec("sufficiency", "faithfulness", False,
               "AOPC of p(x) - p(only the top features), over removal fractions (ERASER, ferret)", generation=True),
    MetricSpec("deletion", "faithfulness", False,
               "area under the curve of p while the most relevant features are removed first (MoRF)", generation=True),
    MetricSpec("deletion_lerf", "faithfulness", True,
               "area under the curve of p while the least relevant features are removed first (LeRF)", generation=True),
    MetricSpec("insertion", "faithfulness", True,
               "area under the curve of p while the most relevant features are inserted first", generation=True),
    MetricSpec("tau_loo", "faithfulness", True,
               "Kendall tau-b between the scores and leave-one-out importance p(x) - p(x without i) (ferret)",
               generation=True),
    MetricSpec("log_odds", "faithfulness", False,
               "log p(x without the top 20% features) - log p(x) (Shrikumar et al.)", generation=True),
    MetricSpec("sensitivity_max", "robustness", False,
               "max over input perturbations of |expl(x + d) - expl(x)| / |expl(x)| (Captum)", needs=("method",)),
    MetricSpec("infidelity", "robustness", False,
               "E[(I . attribution - (f(x) - f(x - I)))^2] over perturbations I of the embeddings (Captum)"),
    MetricSpec("auprc", "plausibility", True, "area under the precision-recall curve against the rationale (ferret)",
               needs=("rationale",)),
    MetricSpec("token_f1", "plausibility", True, "token F1 of the top-k features against the rationale (ferret)",
               needs=("rationale",)),
    MetricSpec("token_iou", "plausibility", True, "token IOU of the top-k features and the rationale (ferret)",
               needs=("rationale",)),
    MetricSpec("randomization_cascading", "sanity", False,
               "mean |Spearman rho| to the attribution after randomising blocks from the top down (Adebayo 2018)",
               needs=("method",)),
    MetricSpec("randomization_independent", "sanity", False,
               "mean |Spearman rho| to the attribution after randomising one block at a time (Adebayo 2018)",
               needs=("method",)),
    MetricSpec("data_randomization", "sanity", False,
               "|Spearman rho| to the attribution of a copy trained on permuted labels (Adebayo 2018)",
               needs=("method", "labels")),
)

_BY_NAME = {m.name: m for m in METRICS}


def names(family: str | None = None) -> tuple[str, ...]:
    """Metric names, of one family when ``family`` is given."""
    if family is not None and family not in FAMILIES:
        raise ValueError(f"unknown metric family {family!r}; use one of {', '.join(FAMILIES)}")
    return tuple(m.name for m in METRICS if family is None or m.family == family)


def get(name: object) -> MetricSpec:
    """The entry of ``name``; an unknown name raises a ValueError listing the valid ones."""
    if not isinstance(name, str) or name not in _BY_NAME:
        raise ValueError(f"unknown metric {name!r}; valid metrics: {', '.join(_BY_NAME)}")
    return _BY_NAME[name]


def default_metrics(*, rationale: bool) -> tuple[str, ...]:
    """What ``metrics=None`` computes: the faithfulness family, plus plausibility when a rationale is given."""
    return names("faithfulness") + (names("plausibility") if rationale else ())


def resolve_metrics(metrics: object, *, rationale: bool, labels: bool, generation: bool = False) -> tuple[str, ...]:
    """Check ``metrics=`` (None, a name, or a list of names) against what was passed; returns the names."""
    if metrics is None:
        chosen = default_metrics(rationale=rationale)
    elif isinstance(metrics, str):
        chosen = (metrics,)
    elif isinstance(metrics, Sequence) and metrics:
        chosen = tuple(metrics)
    else:
        raise TypeError(f"metrics must be a metric name or a non-empty list of them, got {metrics!r}")
    if generation and metrics is None:
        chosen = tuple(n for n in chosen if get(n).generation)
    for name in chosen:
        spec = get(name)
        if "rationale" in spec.needs and not rationale:
            raise ValueError(f"metric {name!r} needs a human rationale: pass rationale= (0/1 per token of each example)")
        if "labels" in spec.needs and not labels:
            raise ValueError(f"metric {name!r} needs labels: pass labels= (one class index per example)")
        if generation and not spec.generation:
            valid = ", ".join(m.name for m in METRICS if m.generation)
            raise ValueError(f"metric {name!r} is not computed for a GenerationAttribution; use one of {valid}")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"metrics lists a name twice: {list(chosen)}")
    return chosen


class MetricCatalog(tuple):
    """``ats.list_metrics()``: the metric entries, with ``.to_pandas()`` and a readable repr."""

    def to_pandas(self):
        import pandas as pd

        return pd.DataFrame([{"metric": m.name, "family": m.family, "higher_is_better": m.higher_is_better,
                              "needs": ", ".join(m.needs), "generation": m.generation, "summary": m.summary}
                             for m in self])

    def __repr__(self) -> str:
        return "\n".join(f"{m.name:26s} {m.family:13s} {'higher' if m.higher_is_better else 'lower'} is better  "
                         f"{m.summary}" for m in self)


def list_metrics(family: str | None = None) -> MetricCatalog:
    """The quality metrics ``evaluate`` and ``benchmark`` compute (``family``: faithfulness, robustness,
    plausibility, sanity)."""
    wanted = set(names(family))
    return MetricCatalog(m for m in METRICS if m.name in wanted)
