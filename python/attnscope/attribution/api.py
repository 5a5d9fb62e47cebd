"""``attribute``: look the method up in the catalog, check its options, prepare inputs and target once, run it."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..results.attribution import AttributionResult
from . import catalog
from .base import AttributionMethod, Request, check_options
from .catalog import check_int, flag
from .prediction import target_labels
from .scope import scoped_model
from ..inputs import model_device, model_inputs
from .seeds import draw_seed
from .targets import resolve_target
from ..model_lock import holds_model

__all__ = ["attribute"]


@holds_model
def attribute(
    model: nn.Module,
    inputs: object,
    *,
    method: str | AttributionMethod,
    target: object = None,
    baselines: object = None,
    tokenizer: object = None,
    internal_batch_size: int | str = "auto",
    memory_budget: int | None = None,
    seed: int | None = None,
    progress: bool | None = None,
    truncation: bool = False,
    **options: Any,
) -> AttributionResult:
    """Attribute a scalar of ``model``'s output to its input tokens with gradients or perturbations.

    Args:
        model: a Hugging Face model (or any module called as ``model(input_ids=..., attention_mask=...)``).
        inputs: a tokenizer's BatchEncoding / dict with ``input_ids`` ``[batch, seq]`` (+ ``attention_mask``,
            ``token_type_ids``; tensors or lists), an ``input_ids`` tensor, or a string / list of strings with
            ``tokenizer=`` (see :func:`attnscope.inputs.model_inputs`).
        method: a name from ``ats.list_methods()``: gradients ``saliency``, ``input_x_gradient``,
            ``integrated_gradients``, ``smoothgrad``, ``gradient_shap``; attention ``attention_x_gradient``;
            perturbations ``occlusion``, ``lime``, ``kernel_shap``, ``shapley_sampling``. Or a method object
            (``IntegratedGradients(n_steps=64)``), which carries its options.
        target: what to explain (see :mod:`attnscope.attribution.targets`): None (next token for LMs, predicted
            class for classifiers), an int, a string (continuation), a target object, a callable, or a list.
        baselines: gradient methods that take them (integrated_gradients, gradient_shap): see
            :mod:`attnscope.attribution.baselines`; default the zero embedding. Perturbation methods: the
            replacement token of absent features, an int id or a token string (with ``tokenizer``); default the
            pad token, else unk, else mask, else id 0 (``res.replacement_token``).
        tokenizer: for token strings, string targets and baselines, and ``res.tokens``.
        internal_batch_size: rows per forward/backward, or "auto" (from ``memory_budget``).
        memory_budget: bytes the rows of one chunk may use (also capping an int ``internal_batch_size``); default a
            quarter of the available memory. A budget that cannot hold one row is a ValueError before any forward.
        seed: seeds the random draws (smoothgrad, gradient_shap: per point; perturbation methods: per example),
            independent of batching and chunking.
        progress: a progress bar over chunks of work (None = only for long runs).
        truncation: inputs longer than the model's positions raise a ValueError naming both lengths; True keeps
            each example's first tokens instead, with a warning.
        **options: the method's options, each with its default and check in the catalog
            (``ats.list_methods()``): ``n_steps``, ``integration`` (riemann_left, riemann_right, riemann_middle,
            riemann_trapezoid, gausslegendre, adaptive) and ``completeness_tol`` (integrated_gradients);
            ``n_steps``, ``stdevs``, ``nt_type`` (smoothgrad); ``n_steps``, ``stdevs`` (gradient_shap); ``layer``
            (the gradient methods: attribute to this module's output); ``features``, ``feature_groups``,
            ``kv_reuse`` (perturbation methods); ``window``, ``stride`` (occlusion); ``n_samples`` (lime,
            kernel_shap, shapley_sampling); ``distance``, ``kernel_width``, ``surrogate``, ``alpha`` (lime);
            ``mode`` (kernel_shap: sampled or exact), ``estimator`` (kernel_shap: leverage, kernel, unbiased,
            captum), ``paired`` (kernel_shap); ``antithetic`` (shapley_sampling); ``tolerance`` (kernel_shap,
            shapley_sampling: sample until every standard error is at most this). An option the method does not
            take raises a ValueError naming the methods that take it.

    Returns:
        :class:`~attnscope.results.AttributionResult` with ``scores [batch, seq]``, ``raw [batch, seq, hidden]``
        (``[batch, seq, 1]`` for perturbation methods and attention_x_gradient), ``delta [batch]`` (integrated
        gradients), ``tokens``, ``n_steps_used``; perturbation methods add ``feature_scores``, ``feature_mask``,
        ``intercept``, ``local_r2``, ``n_forwards`` and ``replacement_token``; kernel_shap and shapley_sampling
        ``standard_errors [batch, n_features]`` and ``stop_reason``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (a Hugging Face model), got {type(model).__name__}")
    runner = _method(method, {k: v for k, v in options.items() if v is not None})
    if baselines is not None and not runner.spec.uses_baselines:
        takers = ", ".join(s.name for s in catalog.CATALOG if s.uses_baselines)
        raise ValueError(f"method={runner.name!r} takes no baselines (only {takers} do); drop baselines=")
    if internal_batch_size != "auto":
        check_int("internal_batch_size", internal_batch_size, 1)
    if memory_budget is not None:
        check_int("memory_budget", memory_budget, 1)
    if seed is not None:
        check_int("seed", seed, 0)
    flag("progress", progress)
    tgt = resolve_target(target)
    prepared = model_inputs(inputs, tokenizer=tokenizer, model=model, device=model_device(model),
                            truncation=truncation)
    with scoped_model(model):  # eval mode: a reference text's embedding without dropout, before any hook
        tgt.prepare(model, tokenizer)
    request = Request(
        model=model,
        inputs=prepared,
        target=tgt,
        tokenizer=tokenizer,
        baselines=baselines,
        seed=draw_seed() if seed is None else seed,
        internal_batch_size=internal_batch_size,
        memory_budget=memory_budget,
        progress=progress,
    )
    return _labelled(runner.run(request), request)


def _labelled(result: AttributionResult, request: Request) -> AttributionResult:
    """The target as text and the model's prediction, for the views (Captum's visualize_text shows both)."""
    result.target_labels = target_labels(request.target, request.inputs.batch, request.tokenizer, request.model)
    if request.prediction is not None:
        result.predicted = request.prediction.labels
        result.predicted_id = request.prediction.ids
        result.predicted_prob = request.prediction.probs
    return result


def _method(method: object, options: dict[str, Any]) -> AttributionMethod:
    """The method object: from its catalog name and options, or as given."""
    if isinstance(method, AttributionMethod):
        if options:
            raise ValueError(f"{method!r} carries its options; drop {', '.join(f'{k}=' for k in options)} or pass "
                             f"method={method.name!r} with them")
        if not method.spec.attribute:
            catalog.get(method.name)  # raises: not a method of attribute
        return method
    spec = catalog.get(method)
    check_options(spec, options, "attribute")
    return spec.load()(**options)

