"""``benchmark``: every attribution method × every quality metric over a set of texts, with the attribution's
runtime per text, means and 95% intervals; resumable with ``out=`` like ``attribute_dataset``."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from .. import resume
from ..attribution import catalog as methods_catalog
from ..attribution.api import attribute
from ..inputs import model_device, model_inputs
from ..results.quality import BenchmarkResult
from . import metrics as metrics_catalog
from .evaluation import evaluate
from ..arguments import name_list, text_list
from ..model_lock import holds_model

__all__ = ["benchmark"]

ROWS = resume.ROWS


def _per_text(value: Any, n: int, what: str) -> list | None:
    if value is None:
        return None
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != n:
        raise ValueError(f"{what} must hold one entry per text ({n}), got {value!r}"[:300])
    return list(value)


def _done(out: Path | None, meta: dict) -> dict[tuple[str, int], list[dict]]:
    """Records already written under ``out``, by (method, text); a cut last line is dropped (recomputed)."""
    if not resume.reusable(out, meta, "benchmark"):
        return {}
    done: dict[tuple[str, int], list[dict]] = {}
    for line in (out / ROWS).read_text(encoding="utf-8").splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        done[(item["method"], item["text"])] = item["records"]
    return done


@holds_model
def benchmark(
    model: nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    methods: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    rationales: Sequence[Any] | None = None,
    labels: Sequence[int] | None = None,
    target: Any = None,
    out: str | Path | None = None,
    method_options: dict[str, dict[str, Any]] | None = None,
    seed: int = 0,
    progress: bool = True,
    **evaluate_options: Any,
) -> BenchmarkResult:
    """Attribute every text with every method and score each explanation with every metric.

    Args:
        model, tokenizer: the model and its tokenizer.
        texts: the texts, each explained alone.
        methods: names from ``ats.list_methods()`` (default: all of them).
        metrics: names from ``ats.list_metrics()`` (default: the faithfulness family, plus plausibility with
            rationales); ``runtime_s`` (the attribution's wall time per text) is always recorded.
        rationales: one human rationale per text (0/1 per token); labels: one class per text.
        target: as for ``attribute`` (one for all texts, or a list with one per text).
        out: a folder: each finished (method, text) is appended to ``out/rows.jsonl``; calling again with the same
            settings skips what is there.
        method_options: per method name, options for ``attribute`` (``{"integrated_gradients": {"n_steps": 32}}``).
        **evaluate_options: passed to :func:`attnscope.evaluate` (``removal``, ``score``, ``fixed``...).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (a Hugging Face model), got {type(model).__name__}")
    texts = text_list(texts)
    names = name_list(methods, "methods") or ([] if methods is not None else list(methods_catalog.names()))
    if not names:
        raise ValueError("methods is empty; pass names from ats.list_methods()")
    for name in names:
        methods_catalog.get(name)  # raises, listing the valid names
    rationales = _per_text(rationales, len(texts), "rationales")
    labels = _per_text(labels, len(texts), "labels")
    targets = _per_text(target, len(texts), "target") if isinstance(target, list) else None
    chosen = list(metrics_catalog.resolve_metrics(metrics, rationale=rationales is not None, labels=labels is not None))
    options = method_options or {}
    unknown = [m for m in options if m not in names]
    if unknown:
        raise ValueError(f"method_options names methods not benchmarked: {unknown}; methods are {names}")
    meta = {"methods": names, "metrics": chosen, "n_texts": len(texts), "target": None if target is None else str(target),
            "seed": seed, "options": {k: str(v) for k, v in sorted(options.items())},
            "evaluate": {k: str(v) for k, v in sorted(evaluate_options.items())}}
    out_dir = Path(out) if out is not None else None
    done = _done(out_dir, meta)
    if out_dir is not None:
        resume.start(out_dir, meta, [json.dumps({"method": m, "text": t, "records": r}) + "\n"
                                     for (m, t), r in done.items()])
    from tqdm.auto import tqdm

    total = len(texts) * len(names)
    bar = tqdm(total=total, initial=len(done), desc="attnscope benchmark", unit="explanation", disable=not progress)
    sink = open(out_dir / ROWS, "a", encoding="utf-8") if out_dir is not None else None
    device = model_device(model)
    try:
        for j, text in enumerate(texts):
            if all((m, j) in done for m in names):
                continue
            enc = model_inputs(tokenizer(text, return_tensors="pt"), tokenizer=tokenizer, model=model, device=device,
                               what="texts")
            tgt = targets[j] if targets is not None else target
            for method in names:
                if (method, j) in done:
                    continue
                start = time.perf_counter()
                res = attribute(model, enc, method=method, target=tgt, tokenizer=tokenizer, seed=seed, progress=False,
                                **options.get(method, {}))
                runtime = time.perf_counter() - start
                ev = evaluate(model, enc, res, metrics=chosen, tokenizer=tokenizer, seed=seed, progress=False,
                              rationale=None if rationales is None else [rationales[j]],
                              labels=None if labels is None else [labels[j]],
                              attribute_options=options.get(method), **evaluate_options)
                records = [{"method": method, "text": j, "metric": k, "value": float(v[0])} for k, v in ev.values.items()]
                records.append({"method": method, "text": j, "metric": "runtime_s", "value": runtime})
                done[(method, j)] = records
                if sink is not None:
                    sink.write(json.dumps({"method": method, "text": j, "records": records},
                                          allow_nan=True) + "\n")
                    sink.flush()
                    os.fsync(sink.fileno())
                bar.update(1)
    finally:
        bar.close()
        if sink is not None:
            sink.close()
    resume.finish(out_dir, meta)
    records = [r for m in names for j in range(len(texts)) for r in done[(m, j)]]
    for r in records:
        r["value"] = float(r["value"]) if r["value"] is not None else math.nan
    return BenchmarkResult(records=records, methods=names, metrics=chosen, n_texts=len(texts),
                           settings={k: str(v) for k, v in meta.items()})
