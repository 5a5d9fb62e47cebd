"""One batch of a data set as per-example rows: the unit of work shared by the local and the Ray engine, so that both
produce the same rows for the same batches."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ..inputs import ModelInputs, model_device, model_inputs
from .api import attribute

# Columns of a row, in order (the Parquet shards and to_parquet keep it).
ROW_FIELDS = ("index", "text", "label", "tokens", "token_ids", "scores", "words", "word_scores", "prediction",
              "probability", "logits", "delta")


def _outputs(model: torch.nn.Module, enc: ModelInputs) -> tuple[list[int | None], list[list[float] | None]]:
    """Per example the predicted class and the logits, for classifiers ([batch, classes] logits); else None (also
    for encoder-decoder models, whose forward would need decoder inputs)."""
    if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
        return [None] * enc.batch, [None] * enc.batch
    with torch.no_grad():
        logits = getattr(model(**enc.forward_kwargs(torch.arange(enc.batch))), "logits", None)
    if logits is None or logits.dim() != 2:
        return [None] * enc.batch, [None] * enc.batch
    logits = logits.double().cpu()
    return logits.argmax(-1).tolist(), logits.tolist()


def batch_rows(model: torch.nn.Module, tokenizer: Any, texts: Sequence[str], labels: Sequence[Any] | None,
               idx: Sequence[int], *, method: str, target: Any, max_length: int | None,
               attribute_kwargs: dict) -> list[dict]:
    """Attribute ``texts[i] for i in idx`` as one batch; one row per example (non-padding positions only)."""
    # Unpadded ids (cut to max_length when given), padded by the input normaliser (a pad token even for tokenizers
    # without one).
    encoded = tokenizer([texts[i] for i in idx], truncation=max_length is not None, max_length=max_length)
    enc = model_inputs(encoded, tokenizer=tokenizer, model=model, device=model_device(model), what="texts")
    batch_target = [target[i] for i in idx] if isinstance(target, list) else target
    res = attribute(model, enc, method=method, target=batch_target, tokenizer=tokenizer, **attribute_kwargs)
    preds, logits = _outputs(model, enc)
    words = res.words()
    rows = []
    for row, i in enumerate(idx):
        valid = res.attention_mask[row].bool()
        probs = None if logits[row] is None else torch.tensor(logits[row], dtype=torch.float64).softmax(-1)
        rows.append({
            "index": i,
            "text": texts[i],
            "label": None if labels is None else labels[i],
            "tokens": [t for t, v in zip(res.tokens[row], valid.tolist()) if v],
            "token_ids": res.input_ids[row][valid].tolist(),
            "scores": res.scores[row][valid].tolist(),
            "words": [w for w, _ in words[row]],
            "word_scores": [s for _, s in words[row]],
            "prediction": preds[row],
            "probability": None if probs is None else float(probs.max()),
            "logits": logits[row],
            "delta": None if res.delta is None else float(res.delta[row]),
        })
    return rows
