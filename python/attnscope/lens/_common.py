"""What the logit lens and direct logit attribution share: inputs, the residual stream, targets, token strings."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from ..adapters.unembedding import Readout
from ..attribution.inputs import ModelInputs, last_positions, prepare_inputs, token_strings
from ..attribution.targets import Contrast, NextToken, Target, TokenId, _Default, _Index, resolve_target

__all__ = ["block_output", "hooks", "lens_inputs", "lens_target", "readout_logits", "token_table"]


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def lens_inputs(model: nn.Module, inputs: object, tokenizer: object) -> ModelInputs:
    """Strings (with ``tokenizer=``), an encoding or an ids tensor, as the attribution engine takes them."""
    if isinstance(inputs, str) or (isinstance(inputs, Sequence) and inputs and all(isinstance(t, str) for t in inputs)):
        if tokenizer is None:
            raise ValueError("inputs are strings: pass tokenizer= (or pass tokenizer(texts, return_tensors='pt'))")
        inputs = tokenizer([inputs] if isinstance(inputs, str) else list(inputs), return_tensors="pt", padding=True)
    mi = prepare_inputs(inputs, _device(model))
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    real = mi.input_ids[mi.attention_mask != 0]
    if vocab and real.numel() and (int(real.max()) >= vocab or int(real.min()) < 0):
        bad = int(real.max()) if int(real.max()) >= vocab else int(real.min())
        raise ValueError(f"input_ids holds token id {bad}, outside the model's vocabulary of {vocab} tokens "
                         f"(0..{vocab - 1}); was the input made by this model's tokenizer?")
    return mi


def block_output(output: object) -> Tensor:
    """The hidden states a block returns (a tensor, or the first item of a tuple)."""
    return output[0] if isinstance(output, (tuple, list)) else output


@contextlib.contextmanager
def hooks(handles: list) -> Iterator[list]:
    """Remove every hook handle in ``handles`` on exit, also on exceptions."""
    try:
        yield handles
    finally:
        for h in handles:
            h.remove()
        handles.clear()


def readout_logits(readout: Readout, x: Tensor) -> Tensor:
    """``softcap(norm(x) @ W.T + b)`` for a few rows ``x`` ``[..., d]`` (the model's own readout)."""
    z = readout.norm(x) @ readout.weight.t().to(x.dtype)
    if readout.bias is not None:
        z = z + readout.bias
    if readout.softcap > 0:
        z = torch.tanh(z / readout.softcap) * readout.softcap
    return z


class _LastLogits:
    """Stands in for model outputs when binding a target: the final logits at the last non-padding position of
    every example, broadcast over the sequence (a view, so ``[batch, seq, vocab]`` is never built)."""

    def __init__(self, last: Tensor, seq: int) -> None:
        self.logits = last[:, None, :].expand(last.shape[0], seq, last.shape[1])


def lens_target(target: object, tokenizer: object, model: nn.Module, mi: ModelInputs,
                last_logits: Tensor) -> tuple[Tensor, str, str]:
    """Token ids ``[batch, T]`` (T = 1 for a token, 2 for a contrast ``a - b``), the kind and a description.

    ``target`` as in :func:`attnscope.attribute` for language models: None (the model's next-token prediction at
    the last position), a token id, a single-token string (with ``tokenizer=``), a list of one per example,
    ``TokenId``/``NextToken``/``Contrast``.
    """
    if isinstance(target, str):
        target = TokenId(target)  # a lens target is one token, not a continuation
    elif isinstance(target, Sequence) and not isinstance(target, (Tensor, str)) and target and all(
            isinstance(t, str) for t in target):
        target = TokenId(list(target))
    resolved = resolve_target(target)
    if not isinstance(resolved, (TokenId, Contrast, _Default, _Index)):
        raise ValueError(
            f"target {resolved.describe()} is not a token: the logit lens and direct logit attribution take None "
            "(next token), a token id or single-token string, TokenId(...), NextToken() or Contrast(a, b)")
    resolved.bind(_LastLogits(last_logits, mi.seq), mi, model, tokenizer)
    inner = getattr(resolved, "_inner", None) or resolved
    if isinstance(inner, Contrast):
        return inner._ab.view(1, 2).expand(mi.batch, 2).clone(), "contrast", inner.describe()
    if isinstance(inner, TokenId):  # NextToken too
        return inner._index.view(-1, 1).clone().long(), "token", inner.describe()
    raise ValueError(f"target {inner.describe()} is not a token of a language model (got a classifier target)")


def token_table(tokenizer: object, ids: Tensor) -> dict[str, str]:
    """``{str(id): token string}`` for every id in ``ids``."""
    unique = sorted({int(i) for i in ids.reshape(-1).tolist()})
    return dict(zip(map(str, unique), token_strings(tokenizer, unique)))


def input_tokens(tokenizer: object, mi: ModelInputs) -> list[list[str]]:
    return [token_strings(tokenizer, row.tolist()) for row in mi.input_ids.cpu()]


def last_position_index(mi: ModelInputs) -> Tensor:
    return last_positions(mi.attention_mask)


__all__ += ["NextToken", "Target", "input_tokens", "last_position_index"]
