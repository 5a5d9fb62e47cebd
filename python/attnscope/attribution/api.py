"""``attribute``: validate arguments, prepare inputs, target and baselines, run a gradient method, return results."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..adapters import resolve_layer
from ..ops import QUADRATURE_RULES
from ..results.attribution import AttributionResult
from . import methods as M
from .baselines import resolve_baselines
from .checks import check_int
from .engine import GradientEngine, choose_chunk, scoped_model
from .inputs import prepare_inputs, token_strings
from .targets import resolve_target

GRADIENT_METHODS = ("saliency", "input_x_gradient", "integrated_gradients", "smoothgrad", "gradient_shap",
                    "attention_x_gradient")
PERTURBATION_METHODS = ("occlusion", "lime", "kernel_shap", "shapley_sampling")
METHODS = (*GRADIENT_METHODS, *PERTURBATION_METHODS)
# Known but not available yet (none at present).
PLANNED_METHODS: tuple[str, ...] = ()
INTEGRATIONS = (*QUADRATURE_RULES, "adaptive")
_USES_BASELINES = ("integrated_gradients", "gradient_shap", *PERTURBATION_METHODS)
# The perturbation arguments and the methods that take them (None everywhere else).
_PERTURBATION_ARGS = {
    "features": PERTURBATION_METHODS,
    "feature_groups": PERTURBATION_METHODS,
    "kv_reuse": PERTURBATION_METHODS,
    "progress": PERTURBATION_METHODS,
    "n_samples": ("lime", "kernel_shap", "shapley_sampling"),
    "window": ("occlusion",),
    "stride": ("occlusion",),
    "distance": ("lime",),
    "kernel_width": ("lime",),
    "surrogate": ("lime",),
    "alpha": ("lime",),
    "mode": ("kernel_shap",),
    "antithetic": ("shapley_sampling",),
}

__all__ = ["GRADIENT_METHODS", "INTEGRATIONS", "METHODS", "PERTURBATION_METHODS", "attribute"]


def attribute(
    model: nn.Module,
    inputs: object,
    *,
    method: str,
    target: object = None,
    baselines: object = None,
    n_steps: int | None = None,
    integration: str | None = None,
    internal_batch_size: int | str = "auto",
    memory_budget: int | None = None,
    layer: nn.Module | str | None = None,
    tokenizer: object = None,
    seed: int | None = None,
    stdevs: float | None = None,
    nt_type: str | None = None,
    completeness_tol: float | None = None,
    features: str | None = None,
    feature_groups: object = None,
    n_samples: int | None = None,
    window: int | None = None,
    stride: int | None = None,
    distance: str | None = None,
    kernel_width: float | None = None,
    surrogate: str | None = None,
    alpha: float | None = None,
    mode: str | None = None,
    antithetic: bool | None = None,
    kv_reuse: bool | None = None,
    progress: bool | None = None,
) -> AttributionResult:
    """Attribute a scalar of ``model``'s output to its input tokens with gradients or perturbations.

    Args:
        model: a Hugging Face model (or any module called as ``model(input_ids=..., attention_mask=...)``).
        inputs: a tokenizer's BatchEncoding / dict with ``input_ids`` ``[batch, seq]`` (+ ``attention_mask``,
            ``token_type_ids``), or an ``input_ids`` tensor.
        method: gradients: ``saliency`` (``|grad|``), ``input_x_gradient``, ``integrated_gradients``,
            ``smoothgrad``, ``gradient_shap``, ``attention_x_gradient``; perturbations: ``occlusion``, ``lime``,
            ``kernel_shap``, ``shapley_sampling`` (see :mod:`attnscope.attribution.perturbation`).
        target: what to explain (see :mod:`attnscope.attribution.targets`): None (next token for LMs, predicted
            class for classifiers), an int, a string (continuation), a target object, a callable, or a list.
        baselines: gradient methods: see :mod:`attnscope.attribution.baselines`; default the zero embedding.
            Perturbation methods: the replacement token of absent features, an int id or a token string (with
            ``tokenizer``); default the pad token, else unk, else mask, else id 0 (``res.replacement_token``).
        n_steps: integration points (integrated_gradients; the maximum per example for ``adaptive``) or noisy
            samples (smoothgrad, gradient_shap); default 32.
        integration: riemann_left, riemann_right, riemann_middle, riemann_trapezoid, gausslegendre (default) or
            adaptive.
        internal_batch_size: rows per forward/backward, or "auto" (from ``memory_budget``).
        memory_budget: bytes the points of one chunk may use; default a quarter of the available memory.
        layer: attribute to this module's output (a module or dotted name) instead of the word embeddings.
        tokenizer: for token strings, string targets and baselines, and ``res.tokens``.
        seed: seeds the random draws (smoothgrad, gradient_shap: per point; perturbation methods: per example),
            independent of batching and chunking.
        stdevs: absolute noise standard deviation (smoothgrad default 0.1, gradient_shap default 0.0).
        nt_type: smoothgrad (default), smoothgrad_sq or vargrad (method="smoothgrad").
        completeness_tol: integration="adaptive" refines until ``|delta| <= completeness_tol * |F(x) - F(x')|``
            (default 0.01).
        features: perturbation methods: ``"tokens"`` (default: every non-padding token) or ``"words"``.
        feature_groups: perturbation methods: per example a list of lists of token positions (together they must
            cover every non-padding token, without overlap), or a ``[batch, seq]`` int tensor of group ids with -1
            at positions that are never perturbed.
        n_samples: coalitions (lime, kernel_shap; default 25, for kernel_shap at least 2 n + 4; mode="exact": None = all 2**n - 2) or
            permutations (shapley_sampling; default 25).
        window: occlusion window, in features (default 1).
        stride: occlusion step, in features (default 1; at most ``window``).
        distance: lime: ``cosine`` (default) or ``euclidean`` between the word embeddings of the input and the
            perturbed input.
        kernel_width: lime kernel width (default 1.0): weight ``exp(-d^2 / (2 width^2))``.
        surrogate: lime: ``ridge`` (default), ``lasso`` or ``linear``.
        alpha: lime: the surrogate's penalty (default ridge 1.0, lasso 0.01).
        mode: kernel_shap: ``sampled`` (default, Captum's scheme) or ``exact`` (constrained Shapley-kernel fit).
        antithetic: shapley_sampling: also use each permutation reversed (default False).
        kv_reuse: causal LMs: reuse the KV cache of the unchanged prefix (None = when possible, True = required).
        progress: a progress bar over forwards (None = only when more than 50 forwards).

    Returns:
        :class:`~attnscope.results.AttributionResult` with ``scores [batch, seq]``, ``raw [batch, seq, hidden]``
        (``[batch, seq, 1]`` for perturbation methods), ``delta [batch]`` (integrated gradients), ``tokens``,
        ``n_steps_used``; perturbation methods add ``feature_scores``, ``feature_mask``, ``intercept``,
        ``local_r2``, ``n_forwards`` and ``replacement_token``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (a Hugging Face model), got {type(model).__name__}")
    if method in PLANNED_METHODS:
        raise ValueError(f"method={method!r} is not available yet; use one of {', '.join(METHODS)}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    given = {"features": features, "feature_groups": feature_groups, "n_samples": n_samples, "window": window,
             "stride": stride, "distance": distance, "kernel_width": kernel_width, "surrogate": surrogate,
             "alpha": alpha, "mode": mode, "antithetic": antithetic, "kv_reuse": kv_reuse, "progress": progress}
    for name, value in given.items():
        if value is not None and method not in _PERTURBATION_ARGS[name]:
            raise ValueError(f"method={method!r} takes no {name}= (only {', '.join(_PERTURBATION_ARGS[name])} do); drop {name}=")
    if method in PERTURBATION_METHODS:
        gradient_only = {"n_steps": n_steps, "integration": integration, "stdevs": stdevs, "nt_type": nt_type,
                         "completeness_tol": completeness_tol, "layer": layer}
        for name, value in gradient_only.items():
            if value is not None:
                raise ValueError(f"method={method!r} takes no {name}= (a gradient-method argument); drop {name}=")
        return _perturbation(model, inputs, method, target=target, baselines=baselines, tokenizer=tokenizer,
                             seed=seed, internal_batch_size=internal_batch_size, memory_budget=memory_budget, **given)
    n_steps = check_int("n_steps", 32 if n_steps is None else n_steps, 1)
    integration = "gausslegendre" if integration is None else integration
    nt_type = "smoothgrad" if nt_type is None else nt_type
    completeness_tol = 0.01 if completeness_tol is None else completeness_tol
    if method == "integrated_gradients":
        if integration not in INTEGRATIONS:
            raise ValueError(f"unknown integration {integration!r}; use one of {', '.join(INTEGRATIONS)}")
        if integration == "riemann_trapezoid" and n_steps < 2:
            raise ValueError(f"integration='riemann_trapezoid' needs n_steps >= 2 (both end points), got {n_steps}")
    if internal_batch_size != "auto":
        check_int("internal_batch_size", internal_batch_size, 1)
    if memory_budget is not None:
        check_int("memory_budget", memory_budget, 1)
    if nt_type not in M.NT_TYPES:
        raise ValueError(f"unknown nt_type {nt_type!r}; use one of {', '.join(M.NT_TYPES)}")
    if stdevs is not None and (not isinstance(stdevs, (int, float)) or stdevs < 0):
        raise ValueError(f"stdevs must be a float >= 0, got {stdevs!r}")
    if not (isinstance(completeness_tol, (int, float)) and completeness_tol > 0):
        raise ValueError(f"completeness_tol must be > 0, got {completeness_tol!r}")
    if baselines is not None and method not in _USES_BASELINES:
        raise ValueError(f"method={method!r} takes no baselines (only {', '.join(_USES_BASELINES)} do); drop baselines=")

    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    prepared = prepare_inputs(inputs, device)
    original = prepared
    orig_len = prepared.seq
    tgt = resolve_target(target)
    layer_module = resolve_layer(model, layer)
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())

    if method == "attention_x_gradient":
        return _attention_x_gradient(model, prepared, original, tgt, tokenizer)

    with scoped_model(model):
        prepared = tgt.extend(prepared, tokenizer, model)
        engine = GradientEngine(model, layer_module, prepared, tgt)
        with engine.installed():
            x, outputs = engine.capture()
            tgt.bind(outputs, prepared, model, tokenizer)
            rows = torch.arange(prepared.batch, device=device)
            with torch.no_grad():
                f_input = tgt(outputs, rows, prepared.attention_mask).detach()
            logits = getattr(outputs, "logits", None)
            vocab = int(logits.shape[-1]) if isinstance(logits, Tensor) and logits.dim() == 3 else 0
            del outputs, logits

            def capture(ids: Tensor) -> Tensor:
                return engine.capture(ids)[0]

            points = prepared.batch * (1 if method in ("saliency", "input_x_gradient") else n_steps)
            engine.chunk = choose_chunk(internal_batch_size, memory_budget, model, prepared.seq, vocab, points)
            if method == "saliency":
                out = M.saliency(engine, x)
            elif method == "input_x_gradient":
                out = M.input_x_gradient(engine, x)
            elif method == "smoothgrad":
                out = M.smoothgrad(engine, x, n_steps, 0.1 if stdevs is None else float(stdevs), nt_type, seed)
            else:
                dist = method == "gradient_shap"
                base = resolve_baselines(
                    baselines, inputs=prepared, x=x, orig_len=orig_len, capture=capture, tokenizer=tokenizer,
                    model=model, distribution=dist,
                )
                if dist:
                    out = M.gradient_shap(engine, x, base, n_steps, 0.0 if stdevs is None else float(stdevs), seed)
                elif integration == "adaptive":
                    out = M.integrated_gradients_adaptive(engine, x, base, n_steps, float(completeness_tol), f_input)
                else:
                    out = M.integrated_gradients(engine, x, base, n_steps, integration, f_input)

    return _result(out.raw, prepared, original, tokenizer, method, tgt, out)


def _perturbation(model, inputs, method, *, target, baselines, tokenizer, seed, internal_batch_size, memory_budget,
                  **kw) -> AttributionResult:
    from .perturbation_api import attribute_perturbation

    return attribute_perturbation(model, inputs, method, target=target, baselines=baselines, tokenizer=tokenizer,
                                  seed=seed, internal_batch_size=internal_batch_size, memory_budget=memory_budget, **kw)


def _attention_x_gradient(model, prepared, original, tgt, tokenizer) -> AttributionResult:
    """Chefer et al. relevance from one captured forward and one backward (no hidden axis: raw is scores[..., None])."""
    from .attention_x_gradient import attention_x_gradient

    with scoped_model(model):
        prepared = tgt.extend(prepared, tokenizer, model)
        rows = torch.arange(prepared.batch, device=prepared.input_ids.device)

        def score(outputs):
            tgt.bind(outputs, prepared, model, tokenizer)
            return tgt(outputs, rows, prepared.attention_mask)

        def position(outputs) -> str:
            logits = getattr(outputs, "logits", None)
            if isinstance(logits, Tensor) and logits.dim() == 3:
                return "last"  # causal LMs: the row that predicts
            return "mean" if getattr(tgt, "name", "") == "similarity" else "first"  # pooled encoders / [CLS]

        scores, f_input = attention_x_gradient(model, prepared.forward_kwargs(rows), score, position=position)
    n_used = torch.ones(prepared.batch, dtype=torch.long)  # one forward and one backward
    out = M.MethodOutput(raw=scores.unsqueeze(-1), delta=None, n_steps_used=n_used, f_input=f_input)
    return _result(scores.unsqueeze(-1), prepared, original, tokenizer, "attention_x_gradient", tgt, out)


def _result(raw_extended, prepared, original, tokenizer, method, tgt, out) -> AttributionResult:
    raw = prepared.to_original(raw_extended)
    raw = raw * original.attributed.unsqueeze(-1).to(raw.dtype)  # padding never receives attribution
    ids = original.input_ids
    tokens = [token_strings(tokenizer, row.tolist()) for row in ids]
    return AttributionResult(
        scores=raw.sum(dim=-1),
        raw=raw,
        tokens=tokens,
        input_ids=ids,
        attention_mask=original.attention_mask,
        method=method,
        target=tgt.describe(),
        delta=out.delta,
        n_steps_used=out.n_steps_used,
        f_input=out.f_input,
        f_baseline=out.f_baseline,
        word_ids=original.word_ids,
    )
