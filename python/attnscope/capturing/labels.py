"""Which tokens label the queries and keys of each attention stack (encoder, decoder, cross, or one main stack)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..inputs import token_strings
from ..results import AttentionResult

__all__ = ["attach_inputs"]


def _tokens(tokenizer: Any, ids: Tensor | None) -> list[list[str]] | None:
    if tokenizer is None or ids is None:
        return None
    return [token_strings(tokenizer, row.tolist()) for row in ids]


def attach_inputs(result: AttentionResult, inputs: dict[str, Tensor] | None, tokenizer: Any, stack: str) -> None:
    """Fill ``result``'s ids, masks and tokens from the forward's ``inputs`` for its ``stack``.

    "main" and "encoder" attend the inputs' tokens; "decoder" attends the decoder's (``decoder_input_ids``);
    "cross" has the decoder's tokens as queries and the encoder's as keys. Decoder labels are left empty when the
    decoder's ids are unknown (a ``generate()`` call), never filled with the encoder's.
    """
    if inputs is None:
        return
    ids, mask = inputs.get("input_ids"), inputs.get("attention_mask")
    if stack in ("decoder", "cross"):
        dec = inputs.get("decoder_input_ids")
        if not isinstance(dec, Tensor):
            return
        dec_mask = inputs.get("decoder_attention_mask")
        result.input_ids = dec
        result.attention_mask = dec_mask if dec_mask is not None else torch.ones_like(dec)
        result.tokens = _tokens(tokenizer, dec)
        if stack == "cross" and isinstance(ids, Tensor):
            result.key_input_ids = ids
            result.key_attention_mask = mask if mask is not None else torch.ones_like(ids)
            result.key_tokens = _tokens(tokenizer, ids)
        return
    result.input_ids = ids
    result.attention_mask = mask
    result.tokens = _tokens(tokenizer, ids)
