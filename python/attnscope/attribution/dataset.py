"""``attribute_dataset``: attribution over a data set, batched, resumable, with global aggregates; on this machine
(``engine="local"``) or on a Ray cluster (``engine="ray"``, :mod:`attnscope.attribution.ray_engine`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch

from .. import resume
from ..results.dataset import DatasetAttribution
from ..model_lock import holds_model
from .catalog import get as method_entry
from .dataset_rows import batch_rows
from .sources import read_corpus

ROWS = resume.ROWS
ENGINES = ("local", "ray")


def _done_rows(out: Path | None, meta: dict) -> dict[int, dict]:
    """The rows an earlier run with the same settings finished in ``out`` (resume; see attnscope.resume). The rows
    file is rewritten, atomically, with whole rows only (a line cut by the interruption would otherwise swallow the
    next row appended); the settings are written as unfinished until the run completes."""
    if out is None:
        return {}
    rows = {}
    if resume.reusable(out, meta, "attribution run"):
        for line in (out / ROWS).read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut by an interruption: recompute that example
                continue
            rows[row["index"]] = row
    resume.start(out, meta, [json.dumps(rows[i]) + "\n" for i in sorted(rows)])
    return rows


def _tokenizer_for(model: Any, tokenizer: Any) -> Any:
    """The tokenizer given, or a save_pretrained folder's own."""
    if not isinstance(model, (str, Path)):
        if tokenizer is None:
            raise ValueError("tokenizer is None: pass the model's tokenizer (or the model as a save_pretrained folder)")
        return tokenizer
    if not (Path(model) / "config.json").is_file():
        raise ValueError(f"model={str(model)!r} is not a save_pretrained folder (no config.json)")
    if tokenizer is not None:
        return tokenizer
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model)


def _load_model(model: Any) -> torch.nn.Module:
    """A model object as given, or a save_pretrained folder loaded as the class its config names."""
    if not isinstance(model, (str, Path)):
        return model
    from ..commands import load_model_dir

    return load_model_dir(Path(model))[0]


def _class_names(model: Any) -> list[str] | None:
    """The model's class names by index (config.id2label), from the object or the folder's config."""
    if isinstance(model, (str, Path)):
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(model)
    else:
        config = getattr(model, "config", None)
    id2label = getattr(config, "id2label", None)
    if not id2label:
        return None
    return [str(id2label[i]) for i in sorted(int(k) for k in id2label)]


def _run_local(model, tokenizer, corpus, *, method, target, batch_size, out_dir, max_length, progress,
               meta, attribute_kwargs) -> dict[int, dict]:
    model = _load_model(model)
    done = _done_rows(out_dir, meta)
    todo = [i for i in range(len(corpus.texts)) if i not in done]
    from tqdm.auto import tqdm

    bar = tqdm(total=len(corpus.texts), initial=len(corpus.texts) - len(todo), desc=f"attnscope {method}",
               unit="text", disable=not progress)
    sink = open(out_dir / ROWS, "a", encoding="utf-8") if out_dir is not None else None
    try:
        for start in range(0, len(todo), batch_size):
            idx = todo[start:start + batch_size]
            for item in batch_rows(model, tokenizer, corpus.texts, corpus.labels, idx, method=method, target=target,
                                   max_length=max_length, attribute_kwargs=attribute_kwargs):
                done[item["index"]] = item
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
    return done


@holds_model
def attribute_dataset(
    model: torch.nn.Module | str | Path,
    tokenizer: Any,
    texts: Any,
    *,
    method: str = "saliency",
    target: Any = None,
    labels: Sequence[Any] | str | None = None,
    text_column: str | None = None,
    split: str | None = None,
    batch_size: int = 8,
    out: str | Path | None = None,
    max_length: int | None = None,
    progress: bool = True,
    engine: str = "local",
    ray_address: str | None = None,
    num_workers: int = 2,
    resources: dict | None = None,
    **attribute_kwargs: Any,
) -> DatasetAttribution:
    """Attribute every text, ``batch_size`` at a time, and aggregate.

    Args:
        model: a model object, or a save_pretrained folder (needed by ``engine="ray"``: each worker loads it).
        tokenizer: the model's tokenizer (None: the folder's).
        texts: a list of strings, a DataFrame, a ``datasets`` object, or a path to a ``save_to_disk`` folder or a
            .parquet / .csv / .jsonl / .txt file (see :func:`attnscope.attribution.sources.read_corpus`).
        labels: gold labels, one per text, or the name of a label column; they enable the error breakdown.
        text_column, split: which column holds the texts, which split of a ``DatasetDict``.
        engine: ``"local"`` (this process) or ``"ray"`` (Ray Data over ``num_workers`` actors, each with the model;
            ``ray_address`` joins a running cluster, None starts a local one on 127.0.0.1; ``resources``:
            ``{"num_cpus": 0.5, "num_gpus": 1}`` per actor).

    With ``out=DIR`` finished work is kept and a second call with the same ``out`` and settings skips it: the local
    engine appends each example to ``DIR/rows.jsonl``; the Ray engine writes ``DIR/shards/*.parquet``.

    Returns a :class:`~attnscope.results.DatasetAttribution`: per-example tokens, words and scores, predictions and
    logits (classifiers), gold labels, and global views (summary, per-label tokens, errors, surrogates, report).
    """
    corpus = read_corpus(texts, labels=labels, text_column=text_column, split=split)
    tokenizer = _tokenizer_for(model, tokenizer)
    method_entry(method)  # an unknown method fails before any output is written
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r}: use one of {', '.join(map(repr, ENGINES))}")
    if isinstance(target, list) and len(target) != len(corpus.texts):
        raise ValueError(f"target has {len(target)} entries for {len(corpus.texts)} texts; pass one per text or one "
                         "for all")
    meta = {"method": method, "target": None if target is None else str(target), "n_texts": len(corpus.texts)}
    out_dir = Path(out) if out is not None else None
    options = dict(method=method, target=target, batch_size=batch_size, out_dir=out_dir, max_length=max_length,
                   progress=progress, meta=meta, attribute_kwargs=attribute_kwargs)
    if engine == "ray":
        from .ray_engine import run_ray

        done = run_ray(model, tokenizer, corpus, address=ray_address, num_workers=num_workers, resources=resources,
                       **options)
    else:
        done = _run_local(model, tokenizer, corpus, **options)
        resume.finish(out_dir, meta)  # the Ray engine keeps its own settings file beside its shards
    for i, row in done.items():  # gold labels are not part of the computation: a resumed run takes today's
        row["label"] = None if corpus.labels is None else corpus.labels[i]
    special = sorted(getattr(tokenizer, "all_special_tokens", None) or [])
    return DatasetAttribution(examples=[done[i] for i in range(len(corpus.texts))], method=method,
                              target=meta["target"], special_tokens=special, class_names=_class_names(model))
