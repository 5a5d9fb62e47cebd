"""The method catalog: every attribution method, its family, its options (defaults and checks) and what it supports.

This module imports no torch: the command line reads it for its choices and help, and ``ats.list_methods()``
answers without loading a model. Everything else that needs a list of method names (``attribute``,
``attribute_generation``, ``attribute_dataset``, the command line, the result views) reads it from here.

Each entry names the class that implements the method (``module:Class`` under ``attnscope.attribution``); the
class owns its options as a dataclass built from the entry (:func:`attnscope.attribution.base.options_class`), so
the defaults and checks below are the only ones. Adding a method is one file with its class plus one entry here.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CATALOG",
    "FAMILIES",
    "MethodCatalog",
    "MethodSpec",
    "Option",
    "check_int",
    "get",
    "list_methods",
    "names",
]

FAMILIES = ("gradient", "perturbation", "attention")
QUADRATURE_RULES = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")
INTEGRATIONS = (*QUADRATURE_RULES, "adaptive")


# --- checks (plain Python: one wording for each kind of mistake) -----------------------------------------------
def check_int(name: str, value: object, minimum: int) -> int:
    """``value`` if it is an int (not a bool) ``>= minimum``; else a TypeError/ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def int_at_least(minimum: int) -> Callable[[str, Any], Any]:
    def check(name: str, value: Any) -> int:
        return check_int(name, value, minimum)

    check.describe = f"int >= {minimum}"  # type: ignore[attr-defined]
    return check


def positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


positive_float.describe = "float > 0"  # type: ignore[attr-defined]


def nonnegative_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a float >= 0, got {value!r}")
    return float(value)


nonnegative_float.describe = "float >= 0"  # type: ignore[attr-defined]


def one_of(*choices: str, what: str = "") -> Callable[[str, Any], Any]:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise ValueError(f"unknown {name} {value!r}{what}; use one of {', '.join(choices)}")
        return value

    check.describe = " | ".join(choices)  # type: ignore[attr-defined]
    return check


def flag(name: str, value: Any) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"{name} must be True, False or None, got {type(value).__name__} {value!r}")
    return value


flag.describe = "bool"  # type: ignore[attr-defined]


def any_value(name: str, value: Any) -> Any:
    return value


any_value.describe = "see the method"  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Option:
    """One option of a method: its default and its check (``None`` is never checked: it means "the method's
    default", resolved by the method where the default depends on other options or on the input)."""

    name: str
    default: Any
    check: Callable[[str, Any], Any]
    help: str

    def validate(self, value: Any) -> Any:
        return value if value is None else self.check(self.name, value)

    @property
    def kind(self) -> str:
        return getattr(self.check, "describe", "")


@dataclass(frozen=True)
class MethodSpec:
    """A catalog entry. ``implementation`` is ``module:Class`` relative to ``attnscope.attribution``;
    ``attribute``/``generation`` say which entry points run it; ``signed`` whether scores have a sign (a diverging
    colour scale) in ``attribute``; ``generation_options`` the options ``attribute_generation`` takes for it."""

    name: str
    family: str
    implementation: str
    summary: str
    signed: bool
    options: tuple[Option, ...] = ()
    uses_baselines: bool = False
    attribute: bool = True
    generation: bool = False
    generation_signed: bool | None = None
    generation_options: tuple[Option, ...] = ()

    def option(self, name: str) -> Option | None:
        return next((o for o in self.options if o.name == name), None)

    def load(self) -> type:
        """The class that implements the method (imports torch)."""
        module, cls = self.implementation.split(":")
        return getattr(importlib.import_module(f"attnscope.attribution.{module}"), cls)

    @property
    def signed_in_generation(self) -> bool:
        return self.signed if self.generation_signed is None else self.generation_signed


# --- options shared by several methods ------------------------------------------------------------------------
_LAYER = Option("layer", None, any_value, "attribute to this module's output (a module or dotted name) instead of the "
                                          "word embeddings")
_FEATURES = Option("features", None, one_of("tokens", "words"),
                   "'tokens' (default: every non-padding token) or 'words' (a fast tokenizer's word ids)")
_GROUPS = Option("feature_groups", None, any_value,
                 "per example a list of lists of token positions, or a [batch, seq] int tensor of group ids "
                 "(-1 = never perturbed)")
_KV = Option("kv_reuse", None, flag, "causal LMs: reuse the KV cache of the unchanged prefix (None = when possible, "
                                     "True = required)")
_N_SAMPLES = Option("n_samples", None, int_at_least(1), "coalitions or permutations (default 25)")
_TOLERANCE = Option("tolerance", None, positive_float,
                    "sample in rounds until every feature's standard error is <= tolerance (in the target's units); "
                    "n_samples is then the most drawn")


def _steps(default: int, what: str) -> Option:
    return Option("n_steps", default, int_at_least(1), what)


def _perturbation(*extra: Option) -> tuple[Option, ...]:
    return (_FEATURES, _GROUPS, _KV, *extra)


CATALOG: tuple[MethodSpec, ...] = (
    MethodSpec(
        "saliency", "gradient", "gradient.saliency:Saliency",
        "|dF/dx|: the gradient's magnitude (Captum Saliency, abs=True)", signed=False,
        options=(_LAYER,), generation=True,
    ),
    MethodSpec(
        "input_x_gradient", "gradient", "gradient.input_x_gradient:InputXGradient",
        "x * dF/dx", signed=True, options=(_LAYER,), generation=True,
    ),
    MethodSpec(
        "integrated_gradients", "gradient", "gradient.integrated_gradients:IntegratedGradients",
        "(x - x') times the path integral of dF/dx; completeness delta per example", signed=True,
        options=(
            _steps(32, "integration points (the maximum per example for integration='adaptive')"),
            Option("integration", "gausslegendre", one_of(*INTEGRATIONS),
                   "riemann_left | riemann_right | riemann_middle | riemann_trapezoid | gausslegendre | adaptive"),
            Option("completeness_tol", 0.01, positive_float,
                   "integration='adaptive' refines until |delta| <= completeness_tol * |F(x) - F(x')|"),
            _LAYER,
        ),
        uses_baselines=True, generation=True,
        generation_options=(
            _steps(32, "integration points"),
            Option("integration", "gausslegendre", one_of(*QUADRATURE_RULES), "the quadrature rule"),
        ),
    ),
    MethodSpec(
        "smoothgrad", "gradient", "gradient.smoothgrad:SmoothGrad",
        "|dF/dx| averaged over Gaussian noise on the input (Captum NoiseTunnel over Saliency)", signed=False,
        options=(
            _steps(32, "noisy samples per example"),
            Option("stdevs", 0.1, nonnegative_float, "absolute noise standard deviation"),
            Option("nt_type", "smoothgrad", one_of("smoothgrad", "smoothgrad_sq", "vargrad"),
                   "mean (smoothgrad), mean square (smoothgrad_sq) or variance (vargrad) of |dF/dx|"),
            _LAYER,
        ),
    ),
    MethodSpec(
        "gradient_shap", "gradient", "gradient.gradient_shap:GradientShap",
        "expected gradients over random baselines and path points (Captum GradientShap)", signed=True,
        options=(
            _steps(32, "samples per example"),
            Option("stdevs", 0.0, nonnegative_float, "absolute noise standard deviation"),
            _LAYER,
        ),
        uses_baselines=True,
    ),
    MethodSpec(
        "gradient_norm", "gradient", "gradient.gradient_norm:GradientNorm",
        "||dF/dx||_2 per token: the gradient's L2 norm over the hidden axis", signed=False,
        options=(_LAYER,), generation=True,
    ),
    MethodSpec(
        "attention_x_gradient", "attention", "gradient.attention_x_gradient:AttentionXGradient",
        "attention relevance weighted by its gradient, propagated through the layers (Chefer et al. 2021)",
        signed=False,
    ),
    MethodSpec(
        "attention", "attention", "generation.attention:Attention",
        "head- and layer-mean attention of the predicting position, captured exactly", signed=False,
        attribute=False, generation=True,
    ),
    MethodSpec(
        "occlusion", "perturbation", "perturbation.occlusion:Occlusion",
        "value drop when a window of features is replaced (Captum Occlusion)", signed=True,
        options=_perturbation(
            Option("window", 1, int_at_least(1), "occlusion window, in features"),
            Option("stride", 1, int_at_least(1), "occlusion step, in features (at most window)"),
        ),
        uses_baselines=True, generation=True,
        generation_options=(
            Option("replacement_token", None, any_value, "the token put in place of each source token (int id or "
                                                         "token string; default pad, unk, mask, else 0)"),
        ),
    ),
    MethodSpec(
        "lime", "perturbation", "perturbation.lime:Lime",
        "a weighted linear surrogate fitted on random coalitions (Captum Lime)", signed=True,
        options=_perturbation(
            _N_SAMPLES,
            Option("distance", "cosine", one_of("cosine", "euclidean"),
                   "between the word embeddings of the input and of the perturbed input"),
            Option("kernel_width", 1.0, positive_float, "weight exp(-d^2 / (2 width^2))"),
            Option("surrogate", "ridge", one_of("ridge", "lasso", "linear"), "the surrogate model"),
            Option("alpha", None, positive_float, "the surrogate's penalty (default ridge 1.0, lasso 0.01)"),
        ),
        uses_baselines=True,
    ),
    MethodSpec(
        "kernel_shap", "perturbation", "perturbation.kernel_shap:KernelShap",
        "Shapley values from a Shapley-kernel weighted fit (Captum KernelShap, or exact)", signed=True,
        options=_perturbation(
            Option("n_samples", None, int_at_least(1),
                   "coalitions, the full and the empty one included (default 25, at least 2 n + 4; with tolerance= "
                   "the most, default 200 n; estimator='leverage': the expected number; mode='exact': None = all "
                   "2**n - 2)"),
            Option("mode", "sampled", one_of("sampled", "exact", what=" for kernel_shap"),
                   "sampled (an estimator below) or exact (constrained Shapley-kernel fit)"),
            Option("estimator", None, one_of("leverage", "kernel", "unbiased", "surrogate", "captum",
                                             what=" for kernel_shap"),
                   "sampled mode: leverage (default; Musco & Witter 2024), kernel or unbiased (Covert & Lee 2021), "
                   "surrogate (leverage sampling, regression-adjusted by a kernel ridge surrogate with closed-form "
                   "Shapley values: fewest evaluations per accuracy), captum (Captum KernelShap's scheme, no "
                   "standard errors)"),
            Option("paired", None, flag, "draw each coalition with its complement (default True; not with "
                                         "estimator='captum')"),
            _TOLERANCE,
        ),
        uses_baselines=True,
    ),
    MethodSpec(
        "shapley_sampling", "perturbation", "perturbation.shapley_sampling:ShapleySampling",
        "Shapley values from random permutations (Captum ShapleyValueSampling)", signed=True,
        options=_perturbation(
            Option("n_samples", None, int_at_least(1), "permutations (default 25; with tolerance= the most, "
                                                       "default 1000)"),
            Option("antithetic", None, flag, "also use each permutation reversed (default False)"),
            _TOLERANCE,
        ),
        uses_baselines=True,
    ),
)

_BY_NAME = {spec.name: spec for spec in CATALOG}


def names(*, family: str | None = None, context: str = "attribute") -> tuple[str, ...]:
    """Method names runnable in ``context`` (``"attribute"`` or ``"generation"``), optionally of one family."""
    if context not in ("attribute", "generation"):
        raise ValueError(f"unknown context {context!r}; use 'attribute' or 'generation'")
    return tuple(s.name for s in CATALOG if getattr(s, context) and (family is None or s.family == family))


def get(name: object, context: str = "attribute") -> MethodSpec:
    """The entry of method ``name`` for ``context``; a ValueError listing the valid names otherwise."""
    valid = names(context=context)
    spec = _BY_NAME.get(name) if isinstance(name, str) else None
    if spec is None or name not in valid:
        where = " for generation" if context == "generation" else ""
        raise ValueError(f"unknown method {name!r}{where}; use one of {', '.join(valid)}")
    return spec


def all_option_names(context: str = "attribute") -> dict[str, tuple[str, ...]]:
    """Option name -> the methods that take it in ``context`` (``"attribute"`` or ``"generation"``)."""
    out: dict[str, list[str]] = {}
    for spec in CATALOG:
        if getattr(spec, context):
            for opt in spec.options if context == "attribute" else spec.generation_options:
                out.setdefault(opt.name, []).append(spec.name)
    return {k: tuple(v) for k, v in out.items()}


class MethodCatalog:
    """The catalog as a table: iterate its entries, index by name, print it, or ``.to_pandas()``."""

    columns = ("method", "family", "signed", "baselines", "attribute", "generation", "options", "summary")

    def __init__(self, specs: tuple[MethodSpec, ...]) -> None:
        self.specs = specs

    def __iter__(self) -> Iterator[MethodSpec]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def __getitem__(self, name: str) -> MethodSpec:
        for spec in self.specs:
            if spec.name == name:
                return spec
        raise KeyError(f"no method {name!r} in the catalog; methods: {', '.join(s.name for s in self.specs)}")

    def __contains__(self, name: object) -> bool:
        return any(s.name == name for s in self.specs)

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "method": s.name,
                "family": s.family,
                "signed": s.signed,
                "baselines": s.uses_baselines,
                "attribute": s.attribute,
                "generation": s.generation,
                "options": ", ".join(f"{o.name}={o.default!r}" for o in s.options),
                "summary": s.summary,
            }
            for s in self.specs
        ]

    def to_pandas(self):
        import pandas as pd

        return pd.DataFrame(self.rows(), columns=list(self.columns))

    def __repr__(self) -> str:
        rows = [[str(r[c]) for c in self.columns[:-1]] for r in self.rows()]
        head = list(self.columns[:-1])
        widths = [max(len(x) for x in col) for col in zip(head, *rows)]
        line = "  ".join
        out = [line(h.ljust(w) for h, w in zip(head, widths))]
        out += [line(x.ljust(w) for x, w in zip(r, widths)).rstrip() for r in rows]
        return "\n".join(out)

    def _repr_html_(self) -> str:
        from html import escape

        head = "".join(f"<th>{escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{escape(str(r[c]))}</td>" for c in self.columns) + "</tr>"
                       for r in self.rows())
        return f"<table class='attnscope-methods'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def list_methods(family: str | None = None) -> MethodCatalog:
    """The attribution methods as a table (``print`` it, show it in a notebook, or ``.to_pandas()``).

    Args:
        family: only ``"gradient"``, ``"perturbation"`` or ``"attention"`` methods.
    """
    if family is not None and family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; use one of {', '.join(FAMILIES)}")
    return MethodCatalog(tuple(s for s in CATALOG if family is None or s.family == family))
