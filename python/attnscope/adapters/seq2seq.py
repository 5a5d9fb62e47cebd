"""Encoder-decoder models (BART, T5, Marian...): the decoder's inputs and the two embedding layers."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["decoder_embeddings", "decoder_start_id", "encoder_embeddings", "is_encoder_decoder",
           "with_decoder_inputs"]

# Arguments that already give the decoder its inputs (the model derives decoder_input_ids from labels).
_DECODER_GIVEN = ("decoder_input_ids", "decoder_inputs_embeds", "labels")


def is_encoder_decoder(model: nn.Module) -> bool:
    """The model has an encoder and a decoder that cross-attends it (``config.is_encoder_decoder``)."""
    return bool(getattr(getattr(model, "config", None), "is_encoder_decoder", False))


def decoder_start_id(model: nn.Module) -> int:
    """The token ``generate`` starts the decoder with: the generation config's ``decoder_start_token_id``, else the
    model config's, else its BOS token."""
    configs = [getattr(model, "generation_config", None), getattr(model, "config", None)]
    for name in ("decoder_start_token_id", "bos_token_id"):
        for cfg in configs:
            value = getattr(cfg, name, None) if cfg is not None else None
            if isinstance(value, list) and value:
                value = value[0]
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    raise ValueError(
        f"{type(model).__name__} is an encoder-decoder model without decoder_start_token_id or bos_token_id in its "
        "config: pass decoder_input_ids with the inputs (e.g. tokenizer(src, text_target=tgt) gives labels)"
    )


def with_decoder_inputs(model: nn.Module, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with ``decoder_input_ids`` ``[batch, 1]`` (the start token) added the way ``generate`` starts,
    when the model is an encoder-decoder and no decoder inputs were given; otherwise ``kwargs`` unchanged."""
    if not is_encoder_decoder(model) or any(kwargs.get(name) is not None for name in _DECODER_GIVEN):
        return kwargs
    ids = kwargs.get("input_ids")
    if not isinstance(ids, Tensor):
        return kwargs
    start = torch.full((ids.shape[0], 1), decoder_start_id(model), dtype=torch.long, device=ids.device)
    return {**kwargs, "decoder_input_ids": start}


def _stack_embeddings(stack: nn.Module | None, model: nn.Module, which: str) -> nn.Module:
    module = getattr(stack, "embed_tokens", None) if stack is not None else None
    if not isinstance(module, nn.Module) and stack is not None and hasattr(stack, "get_input_embeddings"):
        module = stack.get_input_embeddings()
    if not isinstance(module, nn.Module):
        raise ValueError(f"could not find the {which}'s token embeddings of {type(model).__name__}; pass layer= "
                         "with the module to attribute to")
    return module


def encoder_embeddings(model: nn.Module) -> nn.Module:
    """The module whose output is the encoder's token embeddings ``[batch, source, hidden]``."""
    getter = getattr(model, "get_encoder", None)
    return _stack_embeddings(getter() if callable(getter) else None, model, "encoder")


def decoder_embeddings(model: nn.Module) -> nn.Module:
    """The module whose output is the decoder's token embeddings ``[batch, target, hidden]`` (the same module as
    the encoder's when the model shares them, e.g. T5)."""
    getter = getattr(model, "get_decoder", None)
    return _stack_embeddings(getter() if callable(getter) else None, model, "decoder")
