"""Assertions for pytest suites about what a model does. Failure messages show the measured values.

Use them in any test file (``from attnscope.testing import ...``); the pytest plugin adds fixtures such as
``attnscope_organism``.
"""

from __future__ import annotations

import copy
from typing import Any


def assert_attention_matches_eager(model: Any, inputs: Any, *, atol: float = 1e-5, **capture_kwargs: Any) -> None:
    """Captured attention equals the model's own eager ``output_attentions`` on every non-padding query row.

    Encoder-decoder models (Seq2Seq outputs) are checked stack by stack: encoder, decoder and cross attention
    (decoder inputs as ``capture_attention`` builds them when none are given).
    """
    import torch

    from .adapters.seq2seq import with_decoder_inputs
    from .api import capture_attention
    from .inputs import model_inputs

    kwargs = with_decoder_inputs(model, model_inputs(inputs, model=model).kwargs)
    res = capture_attention(model, kwargs, **capture_kwargs)
    eager = copy.deepcopy(model)
    eager.set_attn_implementation("eager")
    with torch.no_grad():
        out = eager(**kwargs, output_attentions=True)
    if getattr(out, "encoder_attentions", None) is not None:
        stacks = [(f"{name} ", getattr(res, name), getattr(out, f"{name}_attentions"))
                  for name in ("encoder", "decoder", "cross")]
    else:
        stacks = [("", res, out.attentions)]
    problems = []
    for name, got, attentions in stacks:
        want = torch.stack([a.float() for a in attentions])[got.layers]
        mask = got.attention_mask
        rows = torch.ones(want.shape[1], want.shape[-2], dtype=torch.bool) if mask is None else \
            mask.bool()[:, -want.shape[-2]:]
        rows = rows[None, :, None, :, None].expand_as(want)
        diff = (got.weights.float() - want).abs().masked_fill(~rows, 0)
        per_layer = diff.flatten(1).amax(1)
        if per_layer.max().item() > atol:
            problems += [f"{name}layer {layer}: {d:.2e}" for layer, d in zip(got.layers, per_layer.tolist())]
    if problems:
        raise AssertionError(f"captured attention differs from eager by more than {atol:g}: {', '.join(problems)}")


def assert_completeness(result: Any, rtol: float = 0.01) -> None:
    """Path-method completeness: ``|delta| <= rtol * |F(x) - F(baseline)|`` for every example."""
    if getattr(result, "delta", None) is None or result.f_input is None or result.f_baseline is None:
        raise AssertionError(f"{result!r} has no completeness delta (only path methods such as integrated_gradients do)")
    gap = (result.f_input - result.f_baseline).abs()
    ratio = result.delta.abs() / gap.clamp_min(1e-12)
    if (ratio > rtol).any():
        detail = ", ".join(f"example {i}: |delta|={d:.3g} = {r:.2%} of |F(x)-F(x')|={g:.3g}"
                           for i, (d, r, g) in enumerate(zip(result.delta.abs().tolist(), ratio.tolist(), gap.tolist())))
        raise AssertionError(f"completeness above rtol={rtol:g} ({result.method}, n_steps_used="
                             f"{None if result.n_steps_used is None else result.n_steps_used.tolist()}): {detail}")


def _scores(result):
    """``[batch, seq]`` scores with the padding mask; encoder-decoder results: the source, then the target prefix."""
    import torch

    if result.decoder_scores is None:
        return result.scores, result.attention_mask.bool()
    return (torch.cat([result.scores, result.decoder_scores], 1),
            torch.cat([result.attention_mask, result.decoder_attention_mask], 1).bool())


def assert_passes_randomization_check(model: Any, inputs: Any, method: str = "saliency", *,
                                      max_rank_correlation: float = 0.5, seed: int = 0,
                                      **attribute_kwargs: Any) -> list[float]:
    """Cascading model-parameter randomisation (Adebayo et al., 2018).

    Randomises the transformer blocks from the top layer down, one more block each step, and attributes again
    (encoder-decoder models: the decoder's blocks, then the encoder's; the source and target-prefix scores).
    Passes when the mean |Spearman ρ| between the trained and the randomised attributions (over the steps, each the
    mean over examples) is below ``max_rank_correlation``: an attribution that ignores the weights fails. Returns ρ
    per step.
    """
    from .attribution import attribute
    from .inputs import model_inputs
    from .quality.sanity import model_randomization

    kwargs = model_inputs(inputs, model=model).kwargs
    trained, mask = _scores(attribute(model, kwargs, method=method, **attribute_kwargs))
    per_step = model_randomization(
        model, lambda work: _scores(attribute(work, kwargs, method=method, **attribute_kwargs))[0].detach().cpu(),
        trained.detach().cpu(), mask.cpu(), cascading=True, seed=seed)  # [batch, layers]
    rhos = per_step.mean(0).tolist()
    mean = sum(rhos) / len(rhos)
    if mean >= max_rank_correlation:
        detail = ", ".join(f"top {i + 1} layer(s) randomised: |rho|={r:.3f}" for i, r in enumerate(rhos))
        raise AssertionError(f"{method} fails the randomisation check: mean |Spearman rho| {mean:.3f} >= "
                             f"{max_rank_correlation:g} ({detail})")
    return rhos


def assert_head_role(model: Any, tokenizer: Any, layer: int, head: int, role: str = "induction", *,
                     min_score: float = 0.5, segment_len: int = 16, n_sequences: int = 32, seed: int = 0) -> float:
    """The head's score for ``role`` (a head_stats statistic: induction, prev_token, duplicate_token, ...) on
    generated repeated random sequences is at least ``min_score``. Returns the score."""
    from .analysis import head_stats

    stats = head_stats(model, tokenizer, None, induction=True, segment_len=segment_len, n_sequences=n_sequences,
                       seed=seed, progress=False)
    if role not in stats.names:
        raise ValueError(f"unknown role {role!r}: use one of {stats.names}")
    scores = stats.scores[role]
    li = stats.layers.index(layer) if layer in stats.layers else None
    if li is None or not 0 <= head < scores.shape[1]:
        raise ValueError(f"layer {layer}, head {head} out of range: the model has layers {stats.layers} and "
                         f"{scores.shape[1]} heads (0..{scores.shape[1] - 1})")
    score = float(scores[li, head])
    if not score >= min_score:
        best_l, best_h, best = stats.top(role, 1)[0]
        raise AssertionError(f"layer {layer} head {head} has {role} score {score:.3f} < {min_score:g}; the best "
                             f"head is layer {best_l} head {best_h} with {best:.3f}")
    return score


__all__ = ["assert_attention_matches_eager", "assert_completeness", "assert_head_role",
           "assert_passes_randomization_check"]
