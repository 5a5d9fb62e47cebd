"""``attribute(method=occlusion | lime | kernel_shap | shapley_sampling)``: validate the perturbation arguments,
build features and the replacement token, run the engine and the method, return an AttributionResult."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..results.attribution import AttributionResult
from . import perturbation_methods as PM
from .checks import check_int
from .engine import choose_chunk, scoped_model
from .inputs import prepare_inputs, token_strings
from .perturbation import PerturbationEngine, resolve_features, resolve_replacement
from .targets import resolve_target

# "auto" chunks stop growing at this many tokens per forward. Forward-only rows could take larger chunks, but on
# CPU (MiniLM, one thread) 64-row chunks of 24 tokens ran ~15 % slower per row than 16- to 21-row chunks.
PERTURBATION_MAX_TOKENS = 512

__all__ = ["PERTURBATION_MAX_TOKENS", "attribute_perturbation"]


def _positive_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _flag(name: str, value: object) -> None:
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"{name} must be True, False or None, got {type(value).__name__} {value!r}")


def attribute_perturbation(
    model: nn.Module,
    inputs: object,
    method: str,
    *,
    target: object,
    baselines: object,
    tokenizer: object,
    seed: int | None,
    internal_batch_size: int | str,
    memory_budget: int | None,
    features: str | None,
    feature_groups: object,
    n_samples: int | None,
    window: int | None,
    stride: int | None,
    distance: str | None,
    kernel_width: float | None,
    surrogate: str | None,
    alpha: float | None,
    mode: str | None,
    antithetic: bool | None,
    kv_reuse: bool | None,
    progress: bool | None,
) -> AttributionResult:
    # --- arguments (every check before the first forward) ---------------------------------------------------
    if internal_batch_size != "auto":
        check_int("internal_batch_size", internal_batch_size, 1)
    if memory_budget is not None:
        check_int("memory_budget", memory_budget, 1)
    if seed is not None:
        check_int("seed", seed, 0)
    if features is not None and not isinstance(features, str):
        raise TypeError(f"features must be 'tokens' or 'words', got {type(features).__name__}")
    _flag("kv_reuse", kv_reuse)
    _flag("progress", progress)
    _flag("antithetic", antithetic)
    if method == "kernel_shap":
        mode = "sampled" if mode is None else mode
        if mode not in PM.KERNEL_SHAP_MODES:
            raise ValueError(f"unknown mode {mode!r} for kernel_shap; use one of {', '.join(PM.KERNEL_SHAP_MODES)}")
    if n_samples is not None:
        check_int("n_samples", n_samples, 1)
    elif method != "kernel_shap":
        n_samples = PM.DEFAULT_N_SAMPLES  # kernel_shap: None picks a per-example default (see kernel_shap)
    if method == "occlusion":
        window = check_int("window", 1 if window is None else window, 1)
        stride = check_int("stride", 1 if stride is None else stride, 1)
        if stride > window:
            raise ValueError(
                f"stride={stride} is larger than window={window}: features between windows would never be "
                "occluded; pass stride <= window"
            )
    if method == "lime":
        distance = "cosine" if distance is None else distance
        if distance not in PM.DISTANCES:
            raise ValueError(f"unknown distance {distance!r}; use one of {', '.join(PM.DISTANCES)}")
        kernel_width = _positive_float("kernel_width", 1.0 if kernel_width is None else kernel_width)
        surrogate = "ridge" if surrogate is None else surrogate
        if surrogate not in PM.SURROGATES:
            raise ValueError(f"unknown surrogate {surrogate!r}; use one of {', '.join(PM.SURROGATES)}")
        if alpha is not None and surrogate == "linear":
            raise ValueError("surrogate='linear' has no penalty; drop alpha= or use surrogate='ridge' / 'lasso'")
        alpha = PM.DEFAULT_ALPHA[surrogate] if alpha is None else _positive_float("alpha", alpha)

    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    original = prepare_inputs(inputs, device)
    feature_orig = resolve_features(features, feature_groups, original)  # [batch, orig_seq]
    tgt = resolve_target(target)
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    vocab_size = getattr(getattr(model, "config", None), "vocab_size", None)
    replacement = resolve_replacement(baselines, tokenizer, model, vocab_size if isinstance(vocab_size, int) else None)

    with scoped_model(model):
        prepared = tgt.extend(original, tokenizer, model)
        # Features in the (possibly extended) frame: appended continuation positions are never perturbed.
        fmask = torch.full((prepared.batch, prepared.seq), -1, dtype=torch.long)
        fmask.scatter_(1, prepared.source_index.cpu(), feature_orig)
        engine = PerturbationEngine(model, prepared, tgt, fmask, replacement, chunk=1, kv_reuse=kv_reuse,
                                    progress=progress, tokenizer=tokenizer)
        n_max = max(engine.n_features)
        points = {"occlusion": n_max, "kernel_shap": n_samples or 2**min(n_max, 16),
                  "shapley_sampling": (n_samples or 1) * (n_max + 1)}.get(method, n_samples or 1)
        engine.chunk = choose_chunk(internal_batch_size, memory_budget, model, prepared.seq, engine.vocab, points,
                                    max_tokens=PERTURBATION_MAX_TOKENS, balanced=True)
        if method == "occlusion":
            out = PM.occlusion(engine, window, stride)
        elif method == "lime":
            out = PM.lime(engine, n_samples, seed, distance, kernel_width, surrogate, alpha)
        elif method == "kernel_shap":
            out = PM.kernel_shap(engine, n_samples, seed, mode)
        else:
            out = PM.shapley_sampling(engine, n_samples, seed, bool(antithetic))

    return _result(original, prepared, engine, feature_orig, out, tgt, method, tokenizer, replacement)


def _result(original, prepared, engine, feature_orig, out, tgt, method, tokenizer, replacement) -> AttributionResult:
    b, n = feature_orig.shape
    n_max = max(engine.n_features)
    feature_scores = torch.full((b, n_max), float("nan"), dtype=torch.float64)
    scores = torch.zeros((b, n), dtype=torch.float64)
    for i, phi in enumerate(out.feature_scores):
        feature_scores[i, : phi.shape[0]] = phi
        f = feature_orig[i]
        # A feature's score goes to each of its tokens (Captum's feature_mask semantics); fixed tokens get 0.
        scores[i] = torch.where(f >= 0, phi[f.clamp_min(0)], torch.zeros((), dtype=torch.float64))
    dtype = torch.float64 if _model_dtype(engine.model) == torch.float64 else torch.float32
    scores = scores.to(dtype)
    ids = original.input_ids
    tokens = [token_strings(tokenizer, row.tolist()) for row in ids]
    return AttributionResult(
        scores=scores,
        raw=scores.unsqueeze(-1).clone(),
        tokens=tokens,
        input_ids=ids,
        attention_mask=original.attention_mask,
        method=method,
        target=tgt.describe(),
        n_steps_used=engine.requested.clone(),
        f_input=engine.f_input.to(dtype),
        f_baseline=None if out.f_baseline is None else out.f_baseline.to(dtype),
        word_ids=original.word_ids,
        feature_scores=feature_scores,
        feature_mask=feature_orig,
        intercept=out.intercept,
        local_r2=out.local_r2,
        n_forwards=engine.forwards.clone(),
        replacement_token=replacement,
        kv_reuse=engine.kv_reuse,
    )


def _model_dtype(model: nn.Module) -> torch.dtype:
    try:
        return next(model.parameters()).dtype
    except StopIteration:
        return torch.float32
