"""The perturbation family's shared run: features and the replacement token, the engine (batched, deduplicated,
KV-prefix reuse), the chunk size, the method's coalitions and fit, and the AttributionResult.

Each method draws its coalitions (or permutations, or windows) once per example from that example's generator,
hands all of them to the engine in one call, and reduces the values to one score per feature. The weighted
least-squares fits of LIME and KernelSHAP run in C++ (Eigen) through :func:`attnscope.ops.weighted_least_squares`
/ :func:`attnscope.ops.weighted_lasso`. The samplers are public so that a test can feed Captum the very same draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ... import ops
from ...results.attribution import AttributionResult
from ..base import AttributionMethod, Request
from ..chunking import PERTURBATION_MAX_TOKENS, choose_chunk
from ..gradient.seq2seq import refuse_encoder_decoder
from ...inputs import ModelInputs, token_strings
from ..scope import scoped_model
from .engine import PerturbationEngine, resolve_features, resolve_replacement

# Captum's default number of samples (Lime, KernelShap, ShapleyValueSampling).
DEFAULT_N_SAMPLES = 25

__all__ = ["DEFAULT_N_SAMPLES", "PerturbationMethod", "PerturbationOutput", "fit_surrogate"]


@dataclass
class PerturbationOutput:
    feature_scores: list[Tensor]  # per example [n_features] float64
    intercept: Tensor | None = None  # [batch] (LIME, KernelSHAP)
    local_r2: Tensor | None = None  # [batch] weighted R² of the surrogate (LIME, KernelSHAP)
    f_baseline: Tensor | None = None  # [batch] the target with every feature absent
    standard_errors: list[Tensor] | None = None  # per example [n_features] float64 (kernel_shap, shapley_sampling)
    stop_reason: list[str] | None = None  # per example, why sampling stopped (rounds.STOP_REASONS)


def fit_surrogate(X: Tensor, y: Tensor, w: Tensor, surrogate: str, alpha: float, **kw):
    """A weighted ``lasso``, ``ridge`` or ``linear`` fit with intercept (C++ solvers)."""
    if surrogate == "lasso":
        return ops.weighted_lasso(X, y, w, alpha=alpha)
    return ops.weighted_least_squares(X, y, w, ridge=alpha if surrogate == "ridge" else 0.0, **kw)


class PerturbationMethod(AttributionMethod):
    """A method computed by :class:`PerturbationEngine`: subclasses give :meth:`points` and :meth:`compute`."""

    def points(self, n_features: int) -> int:
        """Rows the method evaluates for an example of ``n_features`` features (sizes the chunks)."""
        return 1

    def compute(self, engine: PerturbationEngine, seed: int) -> PerturbationOutput:
        raise NotImplementedError

    def run(self, request: Request) -> AttributionResult:
        model, tokenizer, tgt, original = request.model, request.tokenizer, request.target, request.inputs
        refuse_encoder_decoder(model, self.name)
        o = self.options
        feature_orig = resolve_features(o.features, o.feature_groups, original)  # [batch, orig_seq]
        vocab_size = getattr(getattr(model, "config", None), "vocab_size", None)
        replacement = resolve_replacement(request.baselines, tokenizer, model,
                                          vocab_size if isinstance(vocab_size, int) else None)
        with scoped_model(model):
            prepared = tgt.extend(original, tokenizer, model)
            # Features in the (possibly extended) frame: appended continuation positions are never perturbed.
            fmask = torch.full((prepared.batch, prepared.seq), -1, dtype=torch.long)
            fmask.scatter_(1, prepared.source_index.cpu(), feature_orig)
            engine = PerturbationEngine(model, prepared, tgt, fmask, replacement, chunk=1, kv_reuse=o.kv_reuse,
                                        progress=request.progress, tokenizer=tokenizer)
            engine.chunk = choose_chunk(request.internal_batch_size, request.memory_budget, model, prepared.seq,
                                        engine.vocab, self.points(max(engine.n_features)),
                                        max_tokens=PERTURBATION_MAX_TOKENS, balanced=True)
            out = self.compute(engine, request.seed)
        request.prediction = engine.prediction
        return self._result(original, engine, feature_orig, out, tgt, tokenizer, replacement)

    def _result(self, original: ModelInputs, engine: PerturbationEngine, feature_orig: Tensor,
                out: PerturbationOutput, tgt, tokenizer, replacement: int) -> AttributionResult:
        b, n = feature_orig.shape
        n_max = max(engine.n_features)
        feature_scores = torch.full((b, n_max), float("nan"), dtype=torch.float64)
        errors = None if out.standard_errors is None else feature_scores.clone()
        scores = torch.zeros((b, n), dtype=torch.float64)
        for i, phi in enumerate(out.feature_scores):
            feature_scores[i, : phi.shape[0]] = phi
            if errors is not None:
                errors[i, : phi.shape[0]] = out.standard_errors[i]
            f = feature_orig[i]
            # A feature's score goes to each of its tokens (Captum's feature_mask semantics); fixed tokens get 0.
            scores[i] = torch.where(f >= 0, phi[f.clamp_min(0)], torch.zeros((), dtype=torch.float64))
        dtype = torch.float64 if _model_dtype(engine.model) == torch.float64 else torch.float32
        scores = scores.to(dtype)
        ids = original.input_ids
        return AttributionResult(
            scores=scores,
            raw=scores.unsqueeze(-1).clone(),
            tokens=[token_strings(tokenizer, row.tolist()) for row in ids],
            input_ids=ids,
            attention_mask=original.attention_mask,
            method=self.name,
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
            standard_errors=errors,
            stop_reason=out.stop_reason,
        )


def _model_dtype(model: nn.Module) -> torch.dtype:
    try:
        return next(model.parameters()).dtype
    except StopIteration:
        return torch.float32
