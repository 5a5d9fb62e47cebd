"""``attribute_dataset``: attribution over a data set, batched, resumable, with global aggregates."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch

from .. import resume
from ..results.dataset import DatasetAttribution
from ..arguments import text_list
from ..inputs import ModelInputs, model_device, model_inputs
from .api import attribute
from .catalog import get as method_entry
from ..model_lock import holds_model

ROWS = resume.ROWS


def _done_rows(out: Path | None, meta: dict) -> dict[int, dict]:
    if not resume.reusable(out, meta, "attribution run"):
        return {}
    rows = {}
    for line in (out / ROWS).read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line cut by an interruption: recompute that example
            continue
        rows[row["index"]] = row
    return rows


def _predictions(model, enc: ModelInputs) -> list[int | None]:
    """The predicted class of each example for classifiers; None for other models (language models, encoders,
    encoder-decoder models, whose forward would need decoder inputs)."""
    if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
        return [None] * enc.batch
    with torch.no_grad():
        logits = getattr(model(**enc.forward_kwargs(torch.arange(enc.batch))), "logits", None)
    if logits is None or logits.dim() != 2:
        return [None] * enc.batch
    return logits.argmax(-1).tolist()


@holds_model
def attribute_dataset(
    model: torch.nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    method: str = "saliency",
    target: Any = None,
    batch_size: int = 8,
    out: str | Path | None = None,
    max_length: int | None = None,
    progress: bool = True,
    **attribute_kwargs: Any,
) -> DatasetAttribution:
    """Attribute every text, ``batch_size`` at a time, and aggregate.

    With ``out=DIR`` each finished example is appended to ``DIR/rows.jsonl`` as it completes; calling again with the
    same ``out`` skips the examples already there (an interrupted run resumes without recomputing them).

    Returns a :class:`~attnscope.results.DatasetAttribution` with per-example tokens and scores and global
    aggregates (mean |attribution| per vocabulary item and per position; top tokens per predicted class).
    """
    texts = text_list(texts)
    method_entry(method)  # an unknown method fails before any output is written
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    meta = {"method": method, "target": None if target is None else str(target), "n_texts": len(texts)}
    out_dir = Path(out) if out is not None else None
    done = _done_rows(out_dir, meta)
    if out_dir is not None:
        # Keep only whole rows: a line cut by the interruption would otherwise swallow the next row appended.
        resume.start(out_dir, meta, [json.dumps(done[i]) + "\n" for i in sorted(done)])
    todo = [i for i in range(len(texts)) if i not in done]
    from tqdm.auto import tqdm

    bar = tqdm(total=len(texts), initial=len(texts) - len(todo), desc=f"attnscope {method}", unit="text",
               disable=not progress)
    sink = open(out_dir / ROWS, "a", encoding="utf-8") if out_dir is not None else None
    try:
        for start in range(0, len(todo), batch_size):
            idx = todo[start:start + batch_size]
            # Unpadded ids (cut to max_length when given), padded by the input normaliser (a pad token even for
            # tokenizers without one).
            encoded = tokenizer([texts[i] for i in idx], truncation=max_length is not None, max_length=max_length)
            enc = model_inputs(encoded, tokenizer=tokenizer, model=model, device=model_device(model), what="texts")
            batch_target = [target[i] for i in idx] if isinstance(target, list) else target
            res = attribute(model, enc, method=method, target=batch_target, tokenizer=tokenizer, **attribute_kwargs)
            preds = _predictions(model, enc)
            for row, i in enumerate(idx):
                valid = res.attention_mask[row].bool()
                item = {
                    "index": i,
                    "text": texts[i],
                    "tokens": [t for t, v in zip(res.tokens[row], valid.tolist()) if v],
                    "token_ids": res.input_ids[row][valid].tolist(),
                    "scores": res.scores[row][valid].tolist(),
                    "prediction": preds[row],
                    "delta": None if res.delta is None else float(res.delta[row]),
                }
                done[i] = item
                if sink is not None:
                    sink.write(json.dumps(item) + "\n")
            if sink is not None:
                sink.flush()
                os.fsync(sink.fileno())
            bar.update(len(idx))
    finally:
        bar.close()
        if sink is not None:
            sink.close()
    resume.finish(out_dir, meta)
    examples = [done[i] for i in range(len(texts))]
    return DatasetAttribution(examples=examples, method=method, target=meta["target"])
