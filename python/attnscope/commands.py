"""The work behind ``attnscope explain``, ``heads`` and ``benchmark`` (argument checks live in cli.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .atomic_files import replacing


def load_model_dir(path: Path):
    """A model of the class its config names (causal LM, encoder-decoder LM, classifier, or base model) and its
    tokenizer."""
    from transformers import (AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM,
                              AutoModelForSequenceClassification, AutoTokenizer)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    config = AutoConfig.from_pretrained(path)
    names = " ".join(config.architectures or [])
    if "CausalLM" in names or "LMHead" in names:
        cls = AutoModelForCausalLM
    elif "ForConditionalGeneration" in names or "MTModel" in names:  # BART, T5, Marian: keep the LM head
        cls = AutoModelForSeq2SeqLM
    elif "SequenceClassification" in names:
        cls = AutoModelForSequenceClassification
    else:
        cls = AutoModel
    return cls.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def parse_target(text: str | None) -> Any:
    """--target: an integer (class or token id), 'next', 'similarity:TEXT', or text to continue with."""
    from .attribution import NextToken, Similarity

    if text is None:
        return None
    if text.lstrip("-").isdigit():
        return int(text)
    if text == "next":
        return NextToken()
    if text.startswith("similarity:"):
        return Similarity(text[len("similarity:"):])
    return text


def write_table(frame, out: Path, name: str) -> Path:
    """Parquet when pyarrow is installed, else CSV."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        path = out / f"{name}.csv"
        with replacing(path) as tmp:
            frame.to_csv(tmp, index=False)
    else:
        path = out / f"{name}.parquet"
        with replacing(path) as tmp:
            frame.to_parquet(tmp, index=False)
    return path


def global_sections(res) -> list[tuple[str, str, Any]]:
    """Report sections beyond the corpus itself: the summary, top tokens per class, errors, a surrogate."""
    sections = [("summary", "per token, its attributions over the corpus (largest mean |attribution| first)",
                 res.summary().view())]
    has = lambda key: all(ex.get(key) is not None for ex in res.examples)  # noqa: E731
    if has("prediction"):
        sections.append(("top tokens per predicted class", "mean attribution with 95% intervals",
                         res.top_features(by="prediction").view()))
    if has("prediction") and has("label"):
        sections.append(("errors", "tokens that drive wrong predictions vs right ones", res.errors().view()))
    if has("logits") and len(res.examples) >= 8:
        sections.append(("surrogate", "a sparse linear model of the model's outputs on token presence, measured on "
                         "held-out texts", res.surrogate().view()))
    return sections


def explain(args, texts: list[str]) -> int:
    from .attribution import attribute_dataset
    from .viz.report import write_report

    ray = getattr(args, "engine", "local") == "ray"
    # the Ray engine's workers load the folder themselves; the local engine loads it here
    model, tokenizer = (args.model_dir, None) if ray else load_model_dir(args.model_dir)
    engine = dict(engine="ray", ray_address=args.address, num_workers=args.num_workers,
                  resources={"num_cpus": args.num_cpus, "num_gpus": args.num_gpus}) if ray else {}
    res = attribute_dataset(model, tokenizer, texts, labels=getattr(args, "labels", None), method=args.method,
                            target=parse_target(args.target), batch_size=args.batch_size, out=args.out,
                            progress=not args.quiet, n_steps=args.n_steps, n_samples=args.n_samples,  # None: default
                            tolerance=args.tolerance,
                            **engine)
    table = write_table(res.to_pandas(), args.out, "attributions")
    write_table(res.examples_frame(), args.out, "examples")
    report = write_report(args.out, [(f"{args.method} attributions", f"model {args.model_dir}, target "
                                      f"{args.target or 'default'}, {len(texts)} texts", res.view()),
                                     *global_sections(res)],
                          title=f"attnscope explain: {args.model_dir.name}")
    print(f"wrote {report} and {table}", file=sys.stderr)
    return 0


def heads(args, texts: list[str]) -> int:
    from .analysis import head_stats
    from .viz.report import write_report

    model, tokenizer = load_model_dir(args.model_dir)
    stats = head_stats(model, tokenizer, texts, batch_size=args.batch_size, progress=not args.quiet,
                       induction=args.induction, segment_len=args.segment_len, n_sequences=args.n_sequences,
                       seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    table = write_table(stats.to_pandas(), args.out, "heads")
    report = write_report(args.out, [(name, "per layer (rows) and head (columns)", stats.view(name))
                                     for name in stats.names], title=f"attnscope heads: {args.model_dir.name}")
    print(f"wrote {report} and {table}", file=sys.stderr)
    return 0


def benchmark(args, texts: list[str]) -> int:
    from .quality import benchmark as run
    from .viz.report import write_report

    model, tokenizer = load_model_dir(args.model_dir)
    res = run(model, tokenizer, texts, methods=args.methods, metrics=args.metrics, target=parse_target(args.target),
              removal=args.removal, out=args.out, progress=not args.quiet)
    table = write_table(res.to_pandas(), args.out, "benchmark")
    report = write_report(args.out, [("explanation quality", f"model {args.model_dir}, {len(texts)} texts, removal "
                                      f"{args.removal}", res.view())], title=f"attnscope benchmark: {args.model_dir.name}")
    print(f"wrote {report} and {table}", file=sys.stderr)
    return 0
