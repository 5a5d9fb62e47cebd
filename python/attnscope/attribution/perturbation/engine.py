"""The perturbation engine: features, coalitions turned into token ids, and batched forwards with KV reuse.

A *feature* is a set of token positions of one example that is present or absent together: every non-padding token
(the default), every word (``features="words"``, from a fast tokenizer's word ids) or user spans
(``feature_groups=``). An absent feature's tokens are replaced by one replacement token; padding, the attention
mask and the other inputs stay as they are.

A *coalition* is a boolean row ``present [n_features]``. The engine evaluates the target on a set of coalitions of
many examples: it builds the token ids of each, evaluates every distinct (example, ids) row once (methods draw the
same coalition many times: KernelSHAP's small and large sizes, Shapley sampling's empty and full sets; a method that
samples in rounds until its standard errors are small gets the rows of earlier rounds from a memo), in chunks
sized to the memory budget, and returns one value per requested row.

Causal language models (logits ``[batch, seq, vocab]``, a decoder-only model) reuse the KV cache of the unchanged
prefix: the original input runs once with ``use_cache=True``; a chunk of perturbed rows of one example whose first
changed position is ``p`` runs only positions ``>= p`` on a copy of that cache cut to ``p`` (keys and values are
the same for every row, so the copy is expanded over the chunk). Position ids follow the cache
(``p, p+1, ...``) exactly as a full forward numbers them, so left padding keeps the full forward's numbering
too. This is used for targets that read the logits at the last non-padding position (``NextToken``, ``TokenId``,
``Contrast``, plain int targets): only that position's logits are computed (``logits_to_keep``) and the target
reads them as a one-position sequence. Other targets (continuations, callables) and models whose cache is not a
plain ``DynamicCache`` (sliding windows, linear attention) run full forwards.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ...inputs import ModelInputs, last_positions
from ..chunking import progress_bar
from ..prediction import predict
from ..targets import Target, token_id

FEATURES = ("tokens", "words")
# The replacement token when baselines= is not given: the first of these that the tokenizer (or config) defines,
# else token id 0.
REPLACEMENT_ORDER = ("pad", "unk", "mask")

__all__ = [
    "FEATURES",
    "REPLACEMENT_ORDER",
    "PerturbationEngine",
    "resolve_features",
    "resolve_replacement",
]


# --- features -------------------------------------------------------------------------------------------------
def _positions_text(positions: Sequence[int], limit: int = 12) -> str:
    shown = ", ".join(str(p) for p in list(positions)[:limit])
    return f"[{shown}{', ...' if len(positions) > limit else ''}]"


def _from_lists(groups: object, attended: Tensor) -> Tensor:
    """Per-example lists of lists of positions -> feature ids ``[batch, seq]`` (-1 = not a feature)."""
    b, n = attended.shape
    if not isinstance(groups, Sequence) or isinstance(groups, str):
        raise TypeError(
            "feature_groups must be a list (one per example) of lists of token positions, or a [batch, seq] int "
            f"tensor of group ids; got {type(groups).__name__}"
        )
    groups = list(groups)
    # One example may be given without the outer list: [[0, 1], [2]].
    if b == 1 and groups and all(isinstance(g, Sequence) and g and all(isinstance(p, int) for p in g) for g in groups):
        groups = [groups]
    if len(groups) != b:
        raise ValueError(f"feature_groups has {len(groups)} entries for a batch of {b}; pass one list of groups per example")
    out = torch.full((b, n), -1, dtype=torch.long)
    for i, example in enumerate(groups):
        if not isinstance(example, Sequence) or not example:
            raise ValueError(f"feature_groups[{i}] must be a non-empty list of lists of token positions, got {example!r}")
        for k, group in enumerate(example):
            if isinstance(group, Tensor):
                group = group.tolist()
            if not isinstance(group, Sequence) or not group or not all(
                isinstance(p, int) and not isinstance(p, bool) for p in group
            ):
                raise ValueError(f"feature_groups[{i}][{k}] must be a non-empty list of int positions, got {group!r}")
            bad = [p for p in group if not 0 <= p < n]
            if bad:
                raise ValueError(f"feature_groups[{i}][{k}] has positions {_positions_text(bad)} outside 0..{n - 1}")
            pad = [p for p in group if not bool(attended[i, p])]
            if pad:
                raise ValueError(f"feature_groups[{i}][{k}] holds padding positions {_positions_text(pad)}; padding is never perturbed")
            taken = [p for p in group if int(out[i, p]) >= 0]
            if taken or len(set(group)) != len(group):
                dup = taken or [p for p in group if group.count(p) > 1]
                raise ValueError(
                    f"feature_groups[{i}] overlap: positions {_positions_text(sorted(set(dup)))} are in more than one "
                    "group; every token belongs to at most one group"
                )
            out[i, torch.tensor(group)] = k
        missing = ((out[i] < 0) & attended[i].cpu()).nonzero().flatten().tolist()
        if missing:
            raise ValueError(
                f"feature_groups[{i}] leaves out the non-padding positions {_positions_text(missing)}; put them in a "
                "group, or pass feature_groups as a [batch, seq] tensor of group ids with -1 at positions that stay "
                "fixed (never perturbed)"
            )
    return out


def _from_tensor(groups: Tensor, attended: Tensor) -> Tensor:
    b, n = attended.shape
    if groups.dtype.is_floating_point or groups.dtype == torch.bool:
        raise TypeError(f"feature_groups as a tensor must hold int group ids, got dtype {groups.dtype}")
    if groups.dim() == 1 and b == 1:
        groups = groups.unsqueeze(0)
    if tuple(groups.shape) != (b, n):
        raise ValueError(f"feature_groups of shape {tuple(groups.shape)} must be [batch={b}, seq={n}] (group id per token, -1 = fixed)")
    groups = groups.long().cpu()
    att = attended.cpu()
    if bool((groups < -1).any()):
        raise ValueError("feature_groups ids must be >= 0, or -1 for positions that are never perturbed")
    out = torch.full((b, n), -1, dtype=torch.long)
    for i in range(b):
        pad = ((groups[i] >= 0) & ~att[i]).nonzero().flatten().tolist()
        if pad:
            raise ValueError(f"feature_groups[{i}] gives padding positions {_positions_text(pad)} a group; use -1 there")
        ids = groups[i][groups[i] >= 0]
        if ids.numel() == 0:
            raise ValueError(f"feature_groups[{i}] has no group (every id is -1): nothing to attribute")
        # Features are numbered by the sorted group ids: the k-th smallest id is feature k.
        out[i] = torch.where(groups[i] >= 0, torch.searchsorted(ids.unique(), groups[i].clamp_min(0)), groups[i])
    return out


def resolve_features(features: str | None, feature_groups: object, inputs: ModelInputs) -> Tensor:
    """Feature id of every position ``[batch, seq]`` (long, CPU; -1 = never perturbed) in the inputs' frame."""
    attended = (inputs.attention_mask != 0).cpu()
    if feature_groups is not None:
        if features is not None:
            raise ValueError(f"pass features={features!r} or feature_groups=, not both")
        if isinstance(feature_groups, Tensor):
            return _from_tensor(feature_groups, attended)
        return _from_lists(feature_groups, attended)
    features = features or "tokens"
    if features not in FEATURES:
        raise ValueError(f"unknown features {features!r}; use one of {', '.join(FEATURES)} or pass feature_groups=")
    b, n = attended.shape
    if features == "tokens":
        return torch.where(attended, attended.long().cumsum(1) - 1, torch.full_like(attended, -1, dtype=torch.long))
    if inputs.word_ids is None:
        raise ValueError(
            "features='words' needs word ids: pass the BatchEncoding of a fast tokenizer "
            "(tokenizer(texts, return_tensors='pt')), or give the spans with feature_groups="
        )
    out = torch.full((b, n), -1, dtype=torch.long)
    for i in range(b):
        k, prev = -1, object()
        for j in range(n):
            if not bool(attended[i, j]):
                continue
            wid = inputs.word_ids[i][j] if j < len(inputs.word_ids[i]) else None
            if wid is None or wid != prev:  # a special token (no word) is a feature of its own
                k += 1
            prev = wid
            out[i, j] = k
    return out


# --- the replacement token ---------------------------------------------------------------------------------------
def resolve_replacement(baselines: object, tokenizer: object, model: nn.Module, vocab_size: int | None,
                        what: str = "baselines") -> int:
    """The token id that replaces absent features: ``baselines`` (an id, or a token string with ``tokenizer``),
    by default the pad token, then unk, then mask (tokenizer first, then the model config), else 0. ``what`` names
    the argument in errors (``baselines`` for ``attribute``, ``replacement_token`` for ``attribute_generation``)."""
    if baselines is None:
        cfg = getattr(model, "config", None)
        token = None
        for name in REPLACEMENT_ORDER:
            for source in (tokenizer, cfg):
                value = getattr(source, f"{name}_token_id", None) if source is not None else None
                if isinstance(value, int) and not isinstance(value, bool):
                    token = value
                    break
            if token is not None:
                break
        token = 0 if token is None else token
    elif isinstance(baselines, (int, str)) and not isinstance(baselines, bool):
        token = token_id(baselines, tokenizer, what)
    elif isinstance(baselines, Tensor) and baselines.numel() == 1 and not baselines.dtype.is_floating_point:
        token = int(baselines.item())
    else:
        raise TypeError(
            f"{what}= is one replacement token: an int token id, or a token string "
            f"with tokenizer=; got {type(baselines).__name__} {baselines!r}"[:300]
        )
    if vocab_size is not None and not 0 <= token < vocab_size:
        raise ValueError(f"replacement token id {token} out of range: the model has {vocab_size} tokens (0..{vocab_size - 1})")
    return int(token)


# --- the engine --------------------------------------------------------------------------------------------------
@dataclass
class _Prefix:
    """Per-layer keys and values of the original input, one example, for prefix reuse."""

    keys: list[Tensor]  # [1, kv_heads, seq, head_dim] per layer
    values: list[Tensor]


def _cache_of(outputs: object) -> object:
    cache = getattr(outputs, "past_key_values", None)
    return cache if cache is not None else getattr(outputs, "cache", None)


def _looks_causal(model: nn.Module) -> bool:
    cfg = getattr(model, "config", None)
    if getattr(cfg, "is_encoder_decoder", False):
        return False
    name = type(model).__name__
    return bool(getattr(cfg, "is_decoder", False)) or name.endswith(("ForCausalLM", "LMHeadModel"))


def _is_causal_lm(model: nn.Module, outputs: object) -> bool:
    logits = getattr(outputs, "logits", None)
    return isinstance(logits, Tensor) and logits.dim() == 3 and _looks_causal(model)


class PerturbationEngine:
    """Target values of token-id perturbations of ``inputs``, batched, with prefix KV reuse for causal LMs."""

    def __init__(
        self,
        model: nn.Module,
        inputs: ModelInputs,
        target: Target,
        features: Tensor,
        replacement: int,
        *,
        chunk: int,
        kv_reuse: bool | None = None,
        progress: bool | None = None,
        tokenizer: object = None,
    ) -> None:
        self.model, self.inputs, self.target = model, inputs, target
        self.features = features.to(inputs.input_ids.device)  # [batch, seq], -1 = fixed
        self.n_features = [int(f.max()) + 1 for f in features]
        self.replacement = replacement
        self.chunk = chunk
        self.progress = progress
        self.forwards = torch.zeros(inputs.batch, dtype=torch.long)  # model rows run per example
        self.requested = torch.zeros(inputs.batch, dtype=torch.long)  # coalitions evaluated per example
        self._memo: list[dict[bytes, float]] = [{} for _ in range(inputs.batch)]  # token ids -> value, per example
        self.device = inputs.input_ids.device
        rows = torch.arange(inputs.batch, device=self.device)
        kwargs = inputs.forward_kwargs(rows)
        want_cache = kv_reuse is not False and _looks_causal(model)
        with torch.no_grad():
            outputs = model(**kwargs, use_cache=True) if want_cache else model(**kwargs)
        target.bind(outputs, inputs, model, tokenizer)
        self.prediction = predict(outputs, inputs, tokenizer, model)
        self.forwards += 1
        with torch.no_grad():
            self.f_input = self._check(target(outputs, rows, inputs.attention_mask), inputs.batch).double().cpu()
        self.causal = _is_causal_lm(model, outputs)
        self._prefix: list[_Prefix] | None = None
        reason = self._kv_unusable(outputs, inputs)
        if kv_reuse and reason:
            raise ValueError(f"kv_reuse=True is not possible here: {reason}; pass kv_reuse=None (auto) or False")
        if kv_reuse is not False and reason is None:
            cache = _cache_of(outputs)
            self._prefix = [
                _Prefix([layer.keys[i : i + 1] for layer in cache.layers], [layer.values[i : i + 1] for layer in cache.layers])
                for i in range(inputs.batch)
            ]
            params = inspect.signature(model.forward).parameters
            self._keep = "logits_to_keep" in params
            # transformers 5.24 renames the forward's past_key_values to cache (the old name warns)
            self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self.kv_reuse = self._prefix is not None
        logits = getattr(outputs, "logits", None)
        self.vocab = int(logits.shape[-1]) if isinstance(logits, Tensor) and logits.dim() == 3 else 0
        self.embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
        del outputs

    def _kv_unusable(self, outputs: object, inputs: ModelInputs) -> str | None:
        if not self.causal:
            return "the model is not a decoder-only causal LM with logits [batch, seq, vocab]"
        if not self.target.reads_last_position():
            return (f"the target {self.target.describe()} does not read the last position's logits (only NextToken, "
                    "TokenId, Contrast and int targets do)")
        try:
            from transformers.cache_utils import DynamicCache, DynamicLayer
        except ImportError:  # pragma: no cover - transformers is a dependency
            return "transformers.cache_utils is not importable"
        cache = _cache_of(outputs)
        if not isinstance(cache, DynamicCache) or not cache.layers:
            return f"the model returned no DynamicCache (got {type(cache).__name__})"
        if any(type(layer) is not DynamicLayer for layer in cache.layers):
            return "the cache has sliding-window or other non-plain layers, which cannot be cut at a position"
        if any(v.dim() >= 2 and v.shape[1] != inputs.seq for v in inputs.extra.values()):
            return "an extra input is not per position"
        return None

    @staticmethod
    def _check(values: object, c: int) -> Tensor:
        if not isinstance(values, Tensor) or values.shape != (c,):
            raise ValueError(f"the target gave shape {getattr(values, 'shape', None)}, expected [{c}]")
        return values

    # --- coalitions -> token ids -----------------------------------------------------------------------------
    def token_ids(self, example: int, present: Tensor) -> Tensor:
        """Token ids ``[k, seq]`` of example ``example`` with the features absent in ``present`` ``[k, n]``
        replaced."""
        f = self.features[example]
        present = present.to(self.device, torch.bool)
        absent = (f >= 0).unsqueeze(0) & ~present[:, f.clamp_min(0)]
        ids = self.inputs.input_ids[example].unsqueeze(0).expand(present.shape[0], -1)
        return torch.where(absent, torch.full_like(ids, self.replacement), ids)

    def token_present(self, example: int, present: Tensor) -> Tensor:
        """Whether each non-padding token is kept ``[k, seq]`` (fixed tokens always are; padding is False)."""
        f = self.features[example].cpu()
        att = (self.inputs.attention_mask[example] != 0).cpu()
        kept = torch.where((f >= 0).unsqueeze(0), present.cpu().bool()[:, f.clamp_min(0)], torch.ones_like(att).unsqueeze(0))
        return kept & att.unsqueeze(0)

    # --- evaluation ------------------------------------------------------------------------------------------
    def evaluate(self, coalitions: list[Tensor]) -> list[Tensor]:
        """Target values for coalitions ``present [m_i, n_i]`` of every example ``i`` -> ``[m_i]`` float64 each."""
        b = self.inputs.batch
        if len(coalitions) != b:
            raise ValueError(f"{len(coalitions)} coalition sets for a batch of {b}")
        uniques, inverses, known = [], [], []
        for i, present in enumerate(coalitions):
            ids = self.token_ids(i, present)
            if ids.shape[0] == 0:
                u, inv = ids, torch.zeros(0, dtype=torch.long, device=self.device)
            else:
                u, inv = torch.unique(ids, dim=0, return_inverse=True)
            # Rows evaluated by an earlier call (a method that samples in rounds) are not run again.
            keys = [row.cpu().numpy().tobytes() for row in u]
            memo = self._memo[i]
            new = [j for j, key in enumerate(keys) if key not in memo]
            known.append((keys, new))
            uniques.append(u[torch.tensor(new, dtype=torch.long, device=self.device)])
            inverses.append(inv)
            self.requested[i] += present.shape[0]
        total = sum(int(u.shape[0]) for u in uniques)
        bar = progress_bar(total, "perturbation", "fwd", self.progress, 2)
        try:
            values = [self._run_example(i, u, bar) if self._prefix is not None else None for i, u in enumerate(uniques)]
            if self._prefix is None:
                values = self._run_mixed(uniques, bar)
        finally:
            bar.close()
        out = []
        for i, ((keys, new), v, inv) in enumerate(zip(known, values, inverses)):
            memo = self._memo[i]
            memo.update(zip((keys[j] for j in new), v.tolist()))
            out.append(torch.tensor([memo[key] for key in keys], dtype=torch.float64)[inv.cpu()])
        return out

    def _run_mixed(self, uniques: list[Tensor], bar) -> list[Tensor]:
        """Full forwards; a chunk may hold rows of several examples."""
        ids = torch.cat(uniques)
        rows = torch.cat([torch.full((u.shape[0],), i, dtype=torch.long, device=self.device) for i, u in enumerate(uniques)])
        out = torch.empty(ids.shape[0], dtype=torch.float64)
        for start in range(0, ids.shape[0], self.chunk):
            sl = slice(start, start + self.chunk)
            r = rows[sl]
            kwargs = self.inputs.forward_kwargs(r)
            kwargs["input_ids"] = ids[sl]
            with torch.no_grad():
                outputs = self.model(**kwargs)
                out[sl] = self._check(self.target(outputs, r, self.inputs.attention_mask[r]), r.shape[0]).double().cpu()
            bar.update(int(r.shape[0]))
        counts = torch.bincount(rows.cpu(), minlength=len(uniques))
        self.forwards += counts
        return list(out.split([int(u.shape[0]) for u in uniques]))

    def _run_example(self, i: int, ids: Tensor, bar) -> Tensor:
        """Forwards of one example's distinct rows on the cached prefix, sorted by first changed position."""
        from transformers.cache_utils import DynamicCache

        original = self.inputs.input_ids[i]
        n = original.shape[0]
        last = int(last_positions(self.inputs.attention_mask[i : i + 1])[0])
        changed = ids != original.unsqueeze(0)
        first = torch.where(changed.any(1), changed.int().argmax(1), torch.full_like(ids[:, 0], n))
        first = first.clamp_max(last)  # the unchanged row still computes its last position
        order = torch.argsort(first, stable=True)
        out = torch.empty(ids.shape[0], dtype=torch.float64)
        prefix = self._prefix[i]
        mask = self.inputs.attention_mask[i : i + 1]
        for start in range(0, ids.shape[0], self.chunk):
            idx = order[start : start + self.chunk]
            c = int(idx.shape[0])
            p = int(first[idx].min())
            kwargs = {"input_ids": ids[idx, p:], "attention_mask": mask.expand(c, -1), "use_cache": True}
            if p > 0:
                kwargs[self._cache_arg] = DynamicCache(ddp_cache_data=[
                    (k[..., :p, :].expand(c, -1, -1, -1), v[..., :p, :].expand(c, -1, -1, -1))
                    for k, v in zip(prefix.keys, prefix.values)
                ])
            for name, value in self.inputs.extra.items():
                kwargs[name] = value[i : i + 1, p:].expand(c, *value.shape[1:])
            if self._keep:
                kwargs["logits_to_keep"] = torch.tensor([last - p], device=self.device)
            rows = torch.full((c,), i, dtype=torch.long, device=self.device)
            with torch.no_grad():
                outputs = self.model(**kwargs)
                # The logits start at position p (or hold only the last position): the target reads them through a
                # mask whose last non-padding position is that row.
                width = outputs.logits.shape[1]
                tmask = torch.ones((c, width), dtype=mask.dtype, device=self.device)
                if not self._keep:
                    tmask = mask[:, p:].expand(c, -1)
                out[idx.cpu()] = self._check(self.target(outputs, rows, tmask), c).double().cpu()
            del kwargs, outputs
            bar.update(c)
        self.forwards[i] += ids.shape[0]
        return out

    # --- embeddings for LIME's similarity --------------------------------------------------------------------
    def word_embeddings(self, example: int) -> tuple[Tensor, Tensor]:
        """The example's word embeddings ``[seq, hidden]`` and the replacement token's ``[hidden]`` (float64)."""
        if self.embeddings is None:
            raise ValueError(f"{type(self.model).__name__} has no get_input_embeddings(); LIME's distance needs it")
        ids = torch.cat([self.inputs.input_ids[example], torch.tensor([self.replacement], device=self.device)])
        with torch.no_grad():
            e = self.embeddings(ids.unsqueeze(0))[0].double().cpu()
        return e[:-1], e[-1]


def n_windows(n: int, window: int, stride: int) -> int:
    """Captum Occlusion's count of window positions along one axis of length ``n``."""
    return int(math.ceil((n - window) / stride)) + 1
