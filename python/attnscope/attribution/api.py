"""``attribute``: validate arguments, prepare inputs, target and baselines, run a gradient method, return results."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..adapters import resolve_layer
from ..ops import QUADRATURE_RULES
from ..results.attribution import AttributionResult
from . import methods as M
from .baselines import resolve_baselines
from .engine import GradientEngine, choose_chunk, scoped_model
from .inputs import prepare_inputs
from .targets import resolve_target

METHODS = ("saliency", "input_x_gradient", "integrated_gradients", "smoothgrad", "gradient_shap",
           "attention_x_gradient")
# Known but not available yet: they need engines that are not ready.
PLANNED_METHODS = ("occlusion", "lime", "kernel_shap", "shapley_sampling")
INTEGRATIONS = (*QUADRATURE_RULES, "adaptive")
_USES_BASELINES = ("integrated_gradients", "gradient_shap")

__all__ = ["INTEGRATIONS", "METHODS", "attribute"]


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def attribute(
    model: nn.Module,
    inputs: object,
    *,
    method: str,
    target: object = None,
    baselines: object = None,
    n_steps: int = 32,
    integration: str = "gausslegendre",
    internal_batch_size: int | str = "auto",
    memory_budget: int | None = None,
    layer: nn.Module | str | None = None,
    tokenizer: object = None,
    seed: int | None = None,
    stdevs: float | None = None,
    nt_type: str = "smoothgrad",
    completeness_tol: float = 0.01,
) -> AttributionResult:
    """Attribute a scalar of ``model``'s output to its input tokens with gradients.

    Args:
        model: a Hugging Face model (or any module called as ``model(input_ids=..., attention_mask=...)``).
        inputs: a tokenizer's BatchEncoding / dict with ``input_ids`` ``[batch, seq]`` (+ ``attention_mask``,
            ``token_type_ids``), or an ``input_ids`` tensor.
        method: ``saliency`` (``|grad|``), ``input_x_gradient``, ``integrated_gradients``, ``smoothgrad``,
            ``gradient_shap``.
        target: what to explain (see :mod:`attnscope.attribution.targets`): None (next token for LMs, predicted
            class for classifiers), an int, a string (continuation), a target object, a callable, or a list.
        baselines: see :mod:`attnscope.attribution.baselines`; default the zero embedding.
        n_steps: integration points (integrated_gradients; the maximum per example for ``adaptive``) or noisy
            samples (smoothgrad, gradient_shap).
        integration: riemann_left, riemann_right, riemann_middle, riemann_trapezoid, gausslegendre or adaptive.
        internal_batch_size: rows per forward/backward, or "auto" (from ``memory_budget``).
        memory_budget: bytes the points of one chunk may use; default a quarter of the available memory.
        layer: attribute to this module's output (a module or dotted name) instead of the word embeddings.
        tokenizer: for token strings, string targets and baselines, and ``res.tokens``.
        seed: seeds the noise and draws of smoothgrad and gradient_shap (per point, independent of chunking).
        stdevs: absolute noise standard deviation (smoothgrad default 0.1, gradient_shap default 0.0).
        nt_type: smoothgrad, smoothgrad_sq or vargrad (method="smoothgrad").
        completeness_tol: integration="adaptive" refines until ``|delta| <= completeness_tol * |F(x) - F(x')|``.

    Returns:
        :class:`~attnscope.results.AttributionResult` with ``scores [batch, seq]``, ``raw [batch, seq, hidden]``,
        ``delta [batch]`` (integrated gradients), ``tokens``, ``n_steps_used``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (a Hugging Face model), got {type(model).__name__}")
    if method in PLANNED_METHODS:
        raise ValueError(f"method={method!r} is not available yet (the perturbation engine is not written); use one of {', '.join(METHODS)}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    n_steps = _check_int("n_steps", n_steps, 1)
    if method == "integrated_gradients":
        if integration not in INTEGRATIONS:
            raise ValueError(f"unknown integration {integration!r}; use one of {', '.join(INTEGRATIONS)}")
        if integration == "riemann_trapezoid" and n_steps < 2:
            raise ValueError(f"integration='riemann_trapezoid' needs n_steps >= 2 (both end points), got {n_steps}")
    if internal_batch_size != "auto":
        _check_int("internal_batch_size", internal_batch_size, 1)
    if memory_budget is not None:
        _check_int("memory_budget", memory_budget, 1)
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
    if tokenizer is not None and hasattr(tokenizer, "convert_ids_to_tokens"):
        tokens = [list(tokenizer.convert_ids_to_tokens(row.tolist())) for row in ids]
    else:
        tokens = [[str(t) for t in row.tolist()] for row in ids]
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
