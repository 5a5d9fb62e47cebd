"""What the model predicted on the real input, and what each example's target is, as text for the views.

Captum's ``visualize_text`` shows the predicted label with its probability next to the attribution label; these
are ours. ``predict`` reads the outputs of the forward every method already runs on the real input (no extra
forward); ``target_labels`` turns a bound target into one readable label per example (token text, not ids).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..inputs import ModelInputs, last_positions

__all__ = ["Prediction", "class_name", "predict", "target_labels", "token_text"]


@dataclass
class Prediction:
    """Per example: the predicted class or next token (``ids [batch]``), its softmax probability
    (``probs [batch]``) and its label (``labels``: a class name or the token's text)."""

    ids: Tensor
    probs: Tensor
    labels: list[str]


def token_text(tokenizer: object, token: int) -> str:
    """A token as a user reads it: its decoded text, quoted so leading spaces show (``' cat'``); ``id 42`` without
    a tokenizer."""
    if tokenizer is None or not hasattr(tokenizer, "decode"):
        return f"id {token}"
    return repr(tokenizer.decode([int(token)]))


def class_name(model: nn.Module, index: int) -> str:
    """``class 1 (POSITIVE)`` from the config's ``id2label``; ``class 1`` without one."""
    names = getattr(getattr(model, "config", None), "id2label", None) or {}
    name = names.get(int(index), names.get(str(int(index))))
    return f"class {int(index)}" + (f" ({name})" if name is not None else "")


def predict(outputs: object, inputs: ModelInputs, tokenizer: object, model: nn.Module) -> Prediction | None:
    """The prediction in ``outputs`` of a forward on ``inputs``: a classifier's class (``logits [batch, classes]``)
    or a language model's next token at each example's last input position (``logits [batch, seq, vocab]``; a
    continuation target's appended positions are not inputs). None for models without logits (encoders)."""
    logits = getattr(outputs, "logits", None)
    if not isinstance(logits, Tensor) or logits.dim() not in (2, 3) or logits.shape[0] != inputs.batch:
        return None
    classifier = logits.dim() == 2
    with torch.no_grad():
        if not classifier:
            if logits.shape[1] != inputs.seq:
                return None  # e.g. a decoder's logits over other tokens than the inputs
            mask = inputs.attributed.long() if inputs.attributed is not None else inputs.attention_mask
            logits = logits[torch.arange(inputs.batch, device=logits.device), last_positions(mask).to(logits.device)]
        probs = logits.detach().float().softmax(-1)
        best = probs.max(-1)
    ids, p = best.indices.cpu(), best.values.cpu()
    labels = [class_name(model, i) if classifier else token_text(tokenizer, i) for i in ids.tolist()]
    return Prediction(ids, p, labels)


def target_labels(target: object, batch: int, tokenizer: object, model: nn.Module) -> list[str]:
    """One readable label per example of a bound target (``target.label``), e.g. ``next token ' cat'``."""
    label = getattr(target, "label", None)
    return [label(i, tokenizer, model) if label is not None else str(target) for i in range(batch)]
