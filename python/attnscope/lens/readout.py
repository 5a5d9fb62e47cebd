"""Reading the residual stream out through the model's unembedding, and what the logit lens and direct logit
attribution share with it: inputs, block outputs, targets, token strings."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from ..adapters.unembedding import Readout
from ..attribution.targets import NextToken, Target, TokenId, resolve_target
from ..inputs import ModelInputs, last_positions, model_device, model_inputs, token_strings

__all__ = ["block_output", "hooks", "lens_inputs", "lens_target", "readout_logits", "token_table"]


def lens_inputs(model: nn.Module, inputs: object, tokenizer: object) -> ModelInputs:
    """Strings (with ``tokenizer=``), an encoding or an ids tensor, checked by the input normaliser."""
    return model_inputs(inputs, tokenizer=tokenizer, model=model, device=model_device(model))


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
    if not resolved.selects_tokens:
        raise ValueError(
            f"target {resolved.describe()} is not a token: the logit lens and direct logit attribution take None "
            "(next token), a token id or single-token string, TokenId(...), NextToken() or Contrast(a, b)")
    resolved.bind(_LastLogits(last_logits, mi.seq), mi, model, tokenizer)
    ids = resolved.token_ids()
    if ids is None:
        raise ValueError(f"target {resolved.describe()} is not a token of a language model (got a classifier target)")
    if ids.shape[-1] == 2:
        return ids.expand(mi.batch, 2).clone(), "contrast", resolved.describe()
    return ids.clone().long(), "token", resolved.describe()


def token_table(tokenizer: object, ids: Tensor) -> dict[str, str]:
    """``{str(id): token string}`` for every id in ``ids``."""
    unique = sorted({int(i) for i in ids.reshape(-1).tolist()})
    return dict(zip(map(str, unique), token_strings(tokenizer, unique)))


def input_tokens(tokenizer: object, mi: ModelInputs) -> list[list[str]]:
    return [token_strings(tokenizer, row.tolist()) for row in mi.input_ids.cpu()]


def last_position_index(mi: ModelInputs) -> Tensor:
    return last_positions(mi.attention_mask)


__all__ += ["NextToken", "Target", "input_tokens", "last_position_index"]
