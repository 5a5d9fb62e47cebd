"""Baselines (references) of path and Shapley methods, as activations of the attributed layer.

    None / "zero"            zero activations (for the word embeddings: the zero embedding)
    "pad" / "mask" / "unk"   the layer's output with that token at every attributed, non-special position
    a text                   the layer's output on the text's tokens (same length as the input)
    token ids [batch, seq]   the layer's output on those ids ([seq] is used for every example)
    a float tensor           activations [batch, seq, hidden] or [seq, hidden]
    gradient_shap            a distribution: [n, seq, hidden] activations or [n, seq] token ids

Padding (and appended continuation) positions take the input's own activations as baseline, so they never
receive attribution.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..inputs import ModelInputs

TOKEN_BASELINES = ("pad", "mask", "unk")

__all__ = ["TOKEN_BASELINES", "resolve_baselines"]


def _special_token(name: str, tokenizer: object, model: nn.Module) -> int:
    token_id = getattr(tokenizer, f"{name}_token_id", None) if tokenizer is not None else None
    if token_id is None:
        token_id = getattr(getattr(model, "config", None), f"{name}_token_id", None)
    if token_id is None:
        raise ValueError(
            f"baselines={name!r}: the {'tokenizer' if tokenizer is not None else 'model config (pass tokenizer=)'} "
            f"has no {name} token; use 'zero', another of {TOKEN_BASELINES}, or a tensor"
        )
    return int(token_id)


def _special_ids(tokenizer: object, model: nn.Module) -> set[int]:
    if tokenizer is not None and getattr(tokenizer, "all_special_ids", None):
        return set(int(i) for i in tokenizer.all_special_ids)
    cfg = getattr(model, "config", None)
    names = ("cls_token_id", "sep_token_id", "bos_token_id", "eos_token_id")
    out: set[int] = set()
    for n in names:
        v = getattr(cfg, n, None)
        if isinstance(v, int):
            out.add(v)
    return out


def _token_ids_like(inputs: ModelInputs, token_id: int, keep: set[int]) -> Tensor:
    """The inputs' ids with every attributed position that holds no special token replaced by ``token_id``."""
    ids = inputs.input_ids
    special = torch.zeros_like(ids, dtype=torch.bool)
    for k in keep - {token_id}:
        special |= ids == k
    return torch.where(inputs.attributed & ~special, torch.full_like(ids, token_id), ids)


def _ids_in_frame(ids: Tensor, inputs: ModelInputs, orig_len: int) -> Tensor:
    """User token ids [batch or 1, orig_seq] placed into the (possibly extended) inputs' frame."""
    if ids.dim() == 1:
        ids = ids.unsqueeze(0)
    if ids.shape[-1] != orig_len or ids.shape[0] not in (1, inputs.batch):
        raise ValueError(
            f"baseline token ids of shape {tuple(ids.shape)} do not match the inputs [batch={inputs.batch}, "
            f"seq={orig_len}]; pass [batch, seq] or [seq] ids"
        )
    ids = ids.to(inputs.input_ids.device).long().expand(inputs.batch, -1)
    out = inputs.input_ids.clone()
    out.scatter_(1, inputs.source_index, ids)
    return torch.where(inputs.attributed, out, inputs.input_ids)


def _acts_in_frame(t: Tensor, inputs: ModelInputs, x: Tensor) -> Tensor:
    """User activations [n, orig_seq, hidden] placed into the inputs' frame (n = batch: per example; otherwise
    every row with the first example's layout, for a gradient_shap distribution). Other positions are zeros."""
    out = x.new_zeros((t.shape[0], *x.shape[1:]))
    idx = inputs.source_index[: t.shape[0]] if t.shape[0] == inputs.batch else inputs.source_index[:1].expand(t.shape[0], -1)
    idx = idx.unsqueeze(-1).expand(-1, -1, x.shape[-1])
    out.scatter_(1, idx, t.to(x.dtype))
    return out


def resolve_baselines(
    baselines: object,
    *,
    inputs: ModelInputs,
    x: Tensor,
    orig_len: int,
    capture: Callable[[Tensor], Tensor],
    tokenizer: object,
    model: nn.Module,
    distribution: bool,
) -> Tensor:
    """Baseline activations in the inputs' frame: ``[batch, seq, hidden]``, or ``[n, seq, hidden]`` when
    ``distribution`` (gradient_shap). ``capture(ids)`` runs the model on token ids and returns the layer's output."""
    b, n, h = x.shape
    shape_help = (
        f"[batch={b}, seq={orig_len}, hidden={h}] or [seq, hidden] activations, [batch, seq] token ids, "
        f"'zero', {', '.join(repr(t) for t in TOKEN_BASELINES)} or a text"
    )
    if distribution:
        shape_help = f"[n, seq={orig_len}, hidden={h}] activations or [n, seq] token ids"
    if baselines is None or (isinstance(baselines, str) and baselines == "zero"):
        base = torch.zeros_like(x)
        return base[:1] if distribution else _mask_to_input(base, inputs, x)
    if isinstance(baselines, str):
        if baselines in TOKEN_BASELINES:
            tok = _special_token(baselines, tokenizer, model)
            ids = _token_ids_like(inputs, tok, _special_ids(tokenizer, model))
        else:
            if tokenizer is None:
                raise ValueError(
                    f"baselines={baselines!r} is neither 'zero' nor one of {TOKEN_BASELINES}; as a text it needs "
                    "tokenizer="
                )
            enc = tokenizer(baselines, return_tensors="pt")["input_ids"]
            if enc.shape[-1] != orig_len:
                raise ValueError(
                    f"the baseline text {baselines!r} is {enc.shape[-1]} tokens, the inputs {orig_len}; "
                    "they must have the same length"
                )
            ids = _ids_in_frame(enc[0], inputs, orig_len)
        base = capture(ids)
        return base[:1] if distribution else _mask_to_input(base, inputs, x)
    if not isinstance(baselines, Tensor):
        raise TypeError(f"baselines must be None, a string or a tensor, got {type(baselines).__name__}; use {shape_help}")
    t = baselines.to(x.device)
    given = tuple(t.shape)
    if not t.dtype.is_floating_point:
        if distribution:
            if t.dim() != 2 or t.shape[-1] != orig_len:
                raise ValueError(f"baselines of shape {given} do not fit; pass {shape_help}")
            acts = [capture(_ids_in_frame(row, inputs, orig_len))[0] for row in t]
            return torch.stack(acts)
        return _mask_to_input(capture(_ids_in_frame(t, inputs, orig_len)), inputs, x)
    if distribution:
        if t.dim() == 2 and t.shape == (orig_len, h):
            t = t.unsqueeze(0)
        if t.dim() != 3 or t.shape[1:] != (orig_len, h):
            raise ValueError(f"baselines of shape {given} do not fit; pass {shape_help}")
        return _acts_in_frame(t, inputs, x)
    if t.dim() == 2:
        t = t.unsqueeze(0)
    if t.dim() != 3 or t.shape[1:] != (orig_len, h) or t.shape[0] not in (1, b):
        raise ValueError(f"baselines of shape {given} do not fit the attributed activations; pass {shape_help}")
    t = t.expand(b, -1, -1)
    return _mask_to_input(_acts_in_frame(t, inputs, x), inputs, x)


def _mask_to_input(base: Tensor, inputs: ModelInputs, x: Tensor) -> Tensor:
    """Non-attributed positions (padding, continuation) take the input's own activations."""
    return torch.where(inputs.attributed.unsqueeze(-1), base.to(x.dtype), x)
