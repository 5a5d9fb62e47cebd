"""``evaluate``: how good is an explanation? Faithfulness, robustness, plausibility and sanity metrics of an
AttributionResult (or of every generated token of a GenerationAttribution)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..attribution.api import attribute
from ..attribution.perturbation.engine import resolve_features, resolve_replacement
from ..attribution.scope import scoped_model
from ..attribution.targets import Class, Target, TokenId, resolve_target
from ..inputs import (
    ModelInputs,
    model_device,
    model_inputs,
    token_strings,
    vocabulary_size,
)
from ..results.attribution import AttributionResult
from ..results.generation import GenerationAttribution
from ..results.quality import EvaluationResult
from . import metrics as catalog
from . import robustness, sanity
from . import scores as rules
from .faithfulness import FaithfulnessOptions, faithfulness
from .removal import KV_MIN_SAVING, REMOVALS, SCORES, Remover, ScoredTarget, prefix_saving
from ..model_lock import holds_model

__all__ = ["FIXED", "evaluate"]

FIXED = ("special", "first_last", "none")


def _check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"unknown {name}={value!r}; use one of {', '.join(choices)}")
    return value  # type: ignore[return-value]


def _fixed_positions(fixed: object, inputs: ModelInputs, tokenizer: object) -> Tensor:
    """``[batch, seq]`` bool: positions that are never removed (they stay out of every metric)."""
    mask = (inputs.attention_mask != 0).cpu()
    out = torch.zeros_like(mask)
    if isinstance(fixed, str):
        _check_choice("fixed", fixed, FIXED)
        if fixed == "special" and tokenizer is not None:
            special = set(getattr(tokenizer, "all_special_ids", []) or []) - {getattr(tokenizer, "unk_token_id", None)}
            out = torch.isin(inputs.input_ids.cpu(), torch.tensor(sorted(special), dtype=torch.long)) & mask
        elif fixed == "first_last":
            for i in range(inputs.batch):
                valid = mask[i].nonzero().flatten()
                out[i, valid[0]] = out[i, valid[-1]] = True
        return out
    if isinstance(fixed, Tensor) and fixed.dtype == torch.bool and tuple(fixed.shape) == tuple(mask.shape):
        return fixed.cpu() & mask
    raise TypeError(f"fixed must be one of {', '.join(FIXED)} or a [batch, seq] bool tensor, got {fixed!r}"[:300])


def _features(features: Any, feature_groups: Any, inputs: ModelInputs, fixed: Tensor) -> Tensor:
    """Feature id per position ``[batch, seq]`` (-1: fixed or padding), numbered 0..n-1 per example."""
    raw = resolve_features(features, feature_groups, inputs)
    raw = raw.masked_fill(fixed, -1)
    out = torch.full_like(raw, -1)
    for i in range(raw.shape[0]):
        ids = raw[i][raw[i] >= 0]
        if ids.numel() == 0:
            raise ValueError(f"example {i} has no feature left to remove (every token is fixed or padding); pass "
                             "fixed='none'")
        out[i] = torch.where(raw[i] >= 0, torch.searchsorted(ids.unique(), raw[i].clamp_min(0)), raw[i])
    return out


def _feature_values(values: Tensor, features: Tensor) -> list[np.ndarray]:
    """Per example, the sum of ``values`` ``[batch, seq]`` over each feature's positions (float64)."""
    out = []
    for i in range(features.shape[0]):
        f = features[i]
        n = int(f.max()) + 1
        acc = torch.zeros(n, dtype=torch.float64)
        keep = f >= 0
        acc.index_add_(0, f[keep], values[i].detach().double().cpu()[keep])
        out.append(acc.numpy())
    return out


def _rationale(rationale: Any, inputs: ModelInputs) -> Tensor:
    """The human rationale as ``[batch, seq]`` bool: a tensor of that shape, or one 0/1 list per example over its
    non-padding tokens."""
    mask = (inputs.attention_mask != 0).cpu()
    if isinstance(rationale, Tensor):
        r = rationale.cpu()
        if r.dim() == 1 and inputs.batch == 1:
            r = r.unsqueeze(0)
        if tuple(r.shape) != tuple(mask.shape):
            raise ValueError(f"rationale has shape {tuple(r.shape)}; the inputs are [batch={inputs.batch}, "
                             f"seq={inputs.seq}]: pass one 0/1 value per token")
        return r.bool() & mask
    if isinstance(rationale, Sequence) and rationale and all(isinstance(v, (int, bool)) for v in rationale):
        rationale = [rationale]
    if not isinstance(rationale, Sequence) or len(rationale) != inputs.batch:
        raise ValueError(f"rationale must hold one 0/1 list per example ({inputs.batch}), got {rationale!r}"[:300])
    out = torch.zeros_like(mask)
    for i, row in enumerate(rationale):
        n = int(mask[i].sum())
        if len(row) != n:
            raise ValueError(f"rationale[{i}] has {len(row)} values; example {i} has {n} tokens (one 0/1 per "
                             "non-padding token)")
        out[i, mask[i]] = torch.tensor([bool(v) for v in row])
    return out


def _scores_of(attribution: Any, inputs: ModelInputs) -> tuple[Tensor, str, Any]:
    """Token scores ``[batch, seq]``, the method's name and the attribution's target, checked against the inputs."""
    if isinstance(attribution, AttributionResult):
        ids = attribution.input_ids.cpu()
        if tuple(ids.shape) != (inputs.batch, inputs.seq) or not torch.equal(ids, inputs.input_ids.cpu()):
            raise ValueError(
                f"the attribution was computed on other inputs (its input_ids have shape {tuple(ids.shape)}, the "
                f"inputs {(inputs.batch, inputs.seq)}, or the ids differ); pass the inputs it explains"
            )
        return attribution.scores, attribution.method, attribution.target
    if isinstance(attribution, Tensor) and attribution.dtype.is_floating_point:
        scores = attribution.unsqueeze(0) if attribution.dim() == 1 else attribution
        if tuple(scores.shape) != (inputs.batch, inputs.seq):
            raise ValueError(f"attribution scores of shape {tuple(attribution.shape)} do not match the inputs "
                             f"[batch={inputs.batch}, seq={inputs.seq}]")
        return scores, "scores", None
    raise TypeError("attribution must be an AttributionResult, a GenerationAttribution or a float tensor of token "
                    f"scores [batch, seq], got {type(attribution).__name__}")


_DESCRIBED = re.compile(r"^(Class|TokenId|NextToken)\((\[[-0-9, ]*\]|-?[0-9]+)\)$")


def _own_target(described: Any) -> Target | None:
    """The attribution's target rebuilt from its description (``Class(2)``, ``TokenId([5, 7])``,
    ``NextToken([43])``: the explained class or token ids), so the metrics read what the attribution explained."""
    if described is None or isinstance(described, Target):
        return described
    match = _DESCRIBED.match(str(described))
    if match is None:
        raise ValueError(f"the attribution's target {described} cannot be rebuilt from its description: pass the "
                         "same target= to evaluate")
    index = json.loads(match.group(2))
    return Class(index) if match.group(1) == "Class" else TokenId(index)


@holds_model
def evaluate(
    model: nn.Module,
    inputs: Any,
    attribution: Any,
    *,
    metrics: str | Sequence[str] | None = None,
    rationale: Any = None,
    tokenizer: Any = None,
    target: Any = None,
    labels: Any = None,
    removal: str = "replace",
    replacement: Any = None,
    roundtrip: bool = False,
    score: str = "prob",
    features: str | None = None,
    feature_groups: Any = None,
    fixed: Any = "special",
    thresholds: Sequence[float] | None = None,
    based_on: str = "perc",
    only_pos: bool = True,
    steps: int | None = None,
    top_k: int = 5,
    n_perturb_samples: int = 10,
    perturb_radius: float = 0.02,
    noise_std: float = 0.01,
    infidelity_level: str = "token",
    randomization_steps: int = 30,
    attribute_options: dict[str, Any] | None = None,
    seed: int = 0,
    internal_batch_size: int | str = "auto",
    memory_budget: int | None = None,
    kv_reuse: bool | None = None,
    progress: bool | None = None,
) -> EvaluationResult:
    """Score an explanation: faithfulness, robustness, plausibility and sanity (``ats.list_metrics()``).

    Args:
        model: the Hugging Face model the attribution explains.
        inputs: what was attributed (see :func:`attnscope.inputs.model_inputs`); None takes the attribution's ids.
            Ignored for a GenerationAttribution.
        attribution: an :class:`AttributionResult` of these inputs, a float tensor of token scores ``[batch, seq]``,
            or a :class:`GenerationAttribution` (faithfulness of every generated token on its step probability,
            from the teacher-forced prompt + earlier tokens).
        metrics: names from ``ats.list_metrics()``; default the faithfulness family (plus plausibility with a
            rationale).
        rationale: human rationale, one 0/1 list per example over its non-padding tokens (or ``[batch, seq]``).
        target: what the metrics read; default the attribution's own target.
        labels: class per example (``data_randomization``).
        removal: ``replace`` (by ``replacement``, default pad, unk, mask, 0 like occlusion) or ``delete``;
            ``roundtrip=True`` decodes and re-tokenises deleted texts (ferret).
        score: ``prob`` (softmax, then the target: ferret), ``logprob`` or ``target`` (the raw target value).
        features / feature_groups: ``tokens`` (default), ``words``, or spans, as the perturbation methods take them;
            a feature's score is the sum of its tokens' scores.
        fixed: positions never removed: ``special`` (the tokenizer's special tokens but unk), ``first_last``
            (ferret's ``remove_first_last``), ``none``, or a ``[batch, seq]`` bool tensor.
        thresholds, based_on, only_pos: AOPC rationales (ferret: top 10%..100% by ``perc``, positive scores only).
        steps: curve points (default every feature count). top_k: hard rationale size for token F1 / IOU.
        n_perturb_samples, perturb_radius: sensitivity_max; noise_std, infidelity_level: infidelity.
        kv_reuse: causal LMs with last-position targets and ``removal="replace"``: reuse the KV cache of the
            unchanged prefix (True), never (False), or when it skips at least half the positions on average (None).
        randomization_steps: Adam steps of the data-randomisation copy. attribute_options: options of the method
            when a metric re-runs it (robustness, sanity). seed: all random draws.

    Returns:
        :class:`~attnscope.results.EvaluationResult`: ``values[name]`` ``[batch]`` per metric, ``curves`` for the
        curve metrics, ``per_layer`` for the randomisation checks, ``n_forwards`` per example.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (a Hugging Face model), got {type(model).__name__}")
    _check_choice("removal", removal, REMOVALS)
    _check_choice("score", score, SCORES)
    _check_choice("infidelity_level", infidelity_level, robustness.LEVELS)
    _check_choice("based_on", based_on, ("perc", "k"))
    if roundtrip and (removal != "delete" or tokenizer is None):
        raise ValueError("roundtrip=True decodes and re-tokenises deleted texts: use it with removal='delete' and "
                         "tokenizer=")
    options = FaithfulnessOptions(thresholds=tuple(thresholds) if thresholds is not None else
                                  rules.FERRET_THRESHOLDS, based_on=based_on, only_pos=bool(only_pos), steps=steps)
    common = dict(removal=removal, replacement=replacement, roundtrip=roundtrip, score=score, features=features,
                  feature_groups=feature_groups, fixed=fixed, options=options, tokenizer=tokenizer,
                  internal_batch_size=internal_batch_size, memory_budget=memory_budget, kv_reuse=kv_reuse,
                  progress=progress)
    if isinstance(attribution, GenerationAttribution):
        names = catalog.resolve_metrics(metrics, rationale=False, labels=False, generation=True)
        return _evaluate_generation(model, attribution, names, **common)
    names = catalog.resolve_metrics(metrics, rationale=rationale is not None, labels=labels is not None)
    if inputs is None and isinstance(attribution, AttributionResult):
        inputs = {"input_ids": attribution.input_ids, "attention_mask": attribution.attention_mask}
    prepared = model_inputs(inputs, tokenizer=tokenizer, model=model, device=model_device(model))
    scores, method, own_target = _scores_of(attribution, prepared)
    tgt = resolve_target(target if target is not None else _own_target(own_target))
    tgt.prepare(model, tokenizer)
    values, curves, forwards, kv, bound, feats = _faithfulness_of(model, prepared, scores, tgt,
                                                                  [n for n in names if catalog.get(n).family ==
                                                                   "faithfulness"], **common)
    per_layer: dict[str, Tensor] = {}
    if rationale is not None:
        truth = _feature_values(_rationale(rationale, prepared).double(), feats)
        fs = _feature_values(scores, feats)
        for name in (n for n in names if catalog.get(n).family == "plausibility"):
            values[name] = torch.tensor([_plausibility(name, t > 0, s, top_k, only_pos) for t, s in zip(truth, fs)],
                                        dtype=torch.float64)
    rest = [n for n in names if catalog.get(n).family in ("robustness", "sanity")]
    if rest:
        _robust_and_sane(rest, values, per_layer, model=model, inputs=prepared, scores=scores, method=method,
                         attribution=attribution, bound=bound, tokenizer=tokenizer, labels=labels, score=score,
                         n=n_perturb_samples, radius=perturb_radius, noise_std=noise_std, level=infidelity_level,
                         train_steps=randomization_steps, attribute_options=attribute_options or {}, seed=seed)
    ids = prepared.input_ids.cpu()
    return EvaluationResult(
        values={n: values[n] for n in names}, curves=curves, per_layer=per_layer, method=method,
        target=bound.describe(), tokens=[token_strings(tokenizer, row.tolist()) for row in ids],
        attention_mask=prepared.attention_mask.cpu(), n_forwards=forwards, kv_reuse=kv,
        settings={"removal": removal, "score": score, "roundtrip": roundtrip, "fixed": fixed if isinstance(fixed, str)
                  else "mask", "based_on": based_on, "only_pos": bool(only_pos), "top_k": top_k,
                  "thresholds": list(options.thresholds)},
    )


def _plausibility(name: str, truth: np.ndarray, s: np.ndarray, k: int, only_pos: bool) -> float:
    if name == "auprc":
        return rules.auprc(truth, np.maximum(s, 0) if only_pos else s)
    if name == "token_f1":
        return rules.token_f1(truth, s, k, only_pos)
    return rules.token_iou(truth, s, k, only_pos)


def _faithfulness_of(model, prepared: ModelInputs, scores: Tensor, tgt: Target, names: list[str], *, removal,
                     replacement, roundtrip, score, features, feature_groups, fixed, options, tokenizer,
                     internal_batch_size, memory_budget, kv_reuse, progress):
    """Faithfulness values ``{name: [batch]}``, curves, forwards per example, whether KV reuse ran, the bound
    target, and the feature ids ``[batch, seq]``."""
    feats = _features(features, feature_groups, prepared, _fixed_positions(fixed, prepared, tokenizer))
    token = resolve_replacement(replacement, tokenizer, model, vocabulary_size(model), what="replacement")
    scored = ScoredTarget(tgt, score)
    with scoped_model(model):
        extended = tgt.extend(prepared, tokenizer, model)
        if removal == "delete" and extended.seq != prepared.seq:
            raise ValueError(f"removal='delete' cannot keep the positions of the target {tgt.describe()}'s "
                             "appended tokens; use removal='replace'")
        fmask = torch.full((extended.batch, extended.seq), -1, dtype=torch.long)
        fmask.scatter_(1, extended.source_index.cpu(), feats)
        def make_remover(coalitions):
            kv = kv_reuse
            if kv is None and (removal == "delete" or prefix_saving(fmask, coalitions) < KV_MIN_SAVING):
                kv = False  # reuse would skip too little (see removal.KV_MIN_SAVING)
            return Remover(model, extended, scored, fmask, removal=removal, replacement=token, tokenizer=tokenizer,
                           roundtrip=roundtrip, internal_batch_size=internal_batch_size, memory_budget=memory_budget,
                           kv_reuse=kv, progress=progress)

        raw, curves, remover = faithfulness(make_remover, _feature_values(scores, feats), names, options, score)
    values = {n: torch.tensor(v, dtype=torch.float64) for n, v in raw.items()}
    curve_tensors = {n: [torch.from_numpy(np.asarray(c)) for c in cs] for n, cs in curves.items()}
    return values, curve_tensors, remover.forwards.clone(), bool(remover.kv_reuse), tgt, feats


def _robust_and_sane(names, values, per_layer, *, model, inputs: ModelInputs, scores, method, attribution, bound,
                     tokenizer, labels, score, n, radius, noise_std, level, train_steps, attribute_options, seed):
    """Robustness and sanity metrics; those that re-run the method need an AttributionResult's method name."""
    mask = (inputs.attention_mask != 0).cpu()
    scored = ScoredTarget(bound, score)
    needs_method = [name for name in names if "method" in catalog.get(name).needs]
    if needs_method and method == "scores":
        raise ValueError(f"{', '.join(needs_method)} re-run the attribution method: pass an AttributionResult, not "
                         "a tensor of scores")

    def explain_row(work: nn.Module, i: int) -> Tensor:
        single = inputs.forward_kwargs(torch.tensor([i], device=inputs.input_ids.device))
        res = attribute(work, single, method=method, target=robustness.FixedRow(bound, i), tokenizer=tokenizer,
                        seed=seed, progress=False, **attribute_options)
        return res.scores[0].detach().cpu()

    def explain_all(work: nn.Module) -> Tensor:
        return torch.stack([explain_row(work, i) for i in range(inputs.batch)])

    with scoped_model(model):
        for name in names:
            if name == "sensitivity_max":
                values[name] = robustness.sensitivity_max(model, lambda i: explain_row(model, i)[mask[i]], inputs,
                                                          n=n, radius=radius, seed=seed)
            elif name == "infidelity":
                attr = scores
                if level == "embedding":
                    raw = getattr(attribution, "raw", None)
                    hidden = model.get_input_embeddings().weight.shape[1]
                    if raw is None or raw.dim() != 3 or raw.shape[-1] != hidden:
                        raise ValueError(f"infidelity_level='embedding' needs an attribution per embedding "
                                         f"coordinate (raw [batch, seq, {hidden}]); {method} has none: use 'token'")
                    attr = raw
                values[name] = robustness.infidelity(model, inputs, scored, attr.detach(), level=level, n=n,
                                                     noise_std=noise_std, seed=seed)
    if any(name.startswith(("randomization", "data_")) for name in names):
        reference = explain_all(model)
        for name in names:
            if name in ("randomization_cascading", "randomization_independent"):
                rho = sanity.model_randomization(model, explain_all, reference, mask,
                                                 cascading=name.endswith("cascading"), seed=seed)
            elif name == "data_randomization":
                lab = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
                if lab.numel() != inputs.batch:
                    raise ValueError(f"labels has {lab.numel()} entries for a batch of {inputs.batch}")
                kwargs = inputs.forward_kwargs(torch.arange(inputs.batch, device=inputs.input_ids.device))
                rho = sanity.data_randomization(model, explain_all, reference, mask, kwargs,
                                                lab.to(inputs.input_ids.device), steps=train_steps, lr=1e-3,
                                                seed=seed)
            else:
                continue
            per_layer[name] = rho
            values[name] = rho.mean(1)


def _evaluate_generation(model, gen: GenerationAttribution, names, *, tokenizer, **common) -> EvaluationResult:
    """Per generated token ``t``: the faithfulness of row ``t`` of the matrix on the probability of token ``t``
    given the prompt and the tokens before it (the teacher-forced setup the attribution explains)."""
    ids = torch.cat([gen.prompt_ids.reshape(-1), gen.generated_ids.reshape(-1)]).long()
    p = int(gen.prompt_ids.numel())
    device = model_device(model)
    rows: dict[str, list[float]] = {n: [] for n in names}
    curves: dict[str, list[Tensor]] = {}
    forwards, kv = [], True
    for t in range(int(gen.generated_ids.numel())):
        prepared = model_inputs(ids[: p + t].unsqueeze(0), tokenizer=tokenizer, model=model, device=device)
        tgt = TokenId(int(gen.generated_ids[t]))
        values, cs, fw, used, _, _ = _faithfulness_of(model, prepared, gen.matrix[t, : p + t].unsqueeze(0), tgt,
                                                      list(names), tokenizer=tokenizer, **common)
        for n in names:
            rows[n].append(float(values[n][0]))
        for n, c in cs.items():
            curves.setdefault(n, []).extend(c)
        forwards.append(int(fw[0]))
        kv = kv and used
    tokens = [token_strings(tokenizer, ids[: p + t].tolist()) for t in range(int(gen.generated_ids.numel()))]
    mask = torch.zeros(len(tokens), ids.numel(), dtype=torch.long)
    for t in range(len(tokens)):
        mask[t, : p + t] = 1
    return EvaluationResult(
        values={n: torch.tensor(v, dtype=torch.float64) for n, v in rows.items()}, curves=curves, per_layer={},
        method=gen.method, target=f"generated token ({gen.target})", tokens=tokens, attention_mask=mask,
        n_forwards=torch.tensor(forwards), kv_reuse=kv,
        settings={"removal": common["removal"], "score": common["score"], "generation": True},
        row_labels=[f"{t}: {tok}" for t, tok in enumerate(gen.generated_tokens)],
    )
