"""The ``attnscope`` command line: ``demo``, ``explain``, ``heads`` and ``benchmark``.

Usage errors (exit 2) are found before torch is imported; failures exit 1 with one line (the traceback only with
``--debug``); progress bars go to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from .attribution import catalog  # torch-free: unknown methods and options are usage errors found before torch loads
from .quality import metrics as metric_catalog  # torch-free too

ENGINES = ("local", "ray")  # attribute_dataset's engines (attribution/dataset.py imports torch; this list cannot)


class UsageError(Exception):
    """A mistake in the command line: exit status 2."""


def _takers(option: str) -> str:
    return ", ".join(catalog.all_option_names()[option])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attnscope",
        description="Explain transformer language models: attention, attribution and head statistics, "
                    "offline, from a save_pretrained folder.",
        epilog="Exit status: 0 ok, 1 failure, 2 bad usage. Add --debug for a traceback.",
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    # --debug is accepted after the command too; SUPPRESS keeps a subcommand from resetting the global value.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the full traceback")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("demo", parents=[common], help="capture MiniLM's attention, check it against eager attention, write a report")

    explain = sub.add_parser("explain", parents=[common], help="attribute model outputs to input tokens and write a report + table")
    explain.add_argument("model_dir", type=Path, help="a save_pretrained folder (config.json, weights, tokenizer)")
    source = explain.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="one text to explain")
    source.add_argument("--texts", type=Path, help="a .jsonl ({'text': ...} per line), .txt (one per line), .csv or "
                                                   ".parquet file, or a Hugging Face datasets save_to_disk folder")
    explain.add_argument("--text-column", default=None, help="the column holding the texts (default: text, sentence, "
                                                             "content or document)")
    explain.add_argument("--label-column", default=None, help="a column of gold labels (enables the error breakdown)")
    explain.add_argument("--split", default=None, help="the split of a saved DatasetDict")
    explain.add_argument("--method", default="saliency", metavar="METHOD",
                         help=f"one of: {', '.join(catalog.names())} (default: saliency; `python -c 'import attnscope; "
                              "print(attnscope.list_methods())'` describes them)")
    explain.add_argument("--target", default=None,
                         help="class index or token id (an integer), 'next' (next token), or text to continue with")
    explain.add_argument("--out", type=Path, default=Path("attnscope-out"), help="output folder (default: attnscope-out)")
    explain.add_argument("--batch-size", type=int, default=8)
    explain.add_argument("--n-steps", type=int, default=None,
                         help=f"integration points or samples of {_takers('n_steps')} (default: 32)")
    explain.add_argument("--n-samples", type=int, default=None,
                         help=f"coalitions or permutations of {_takers('n_samples')} (default: 25; kernel_shap: at "
                              "least 2n + 4)")
    explain.add_argument("--engine", default="local", choices=ENGINES,
                         help="local (this process, default) or ray (Ray Data actors; pip install 'attnscope[ray]')")
    explain.add_argument("--address", default=None, help="with --engine ray: a running cluster's HOST:PORT (default: "
                                                         "start a local one on 127.0.0.1)")
    explain.add_argument("--num-workers", type=int, default=2, help="with --engine ray: actors, each with the model")
    explain.add_argument("--num-cpus", type=float, default=0.5, help="with --engine ray: CPUs per actor (default 0.5)")
    explain.add_argument("--num-gpus", type=float, default=0.0, help="with --engine ray: GPUs per actor (default 0)")
    explain.add_argument("--quiet", action="store_true", help="no progress bar")

    bench = sub.add_parser("benchmark", parents=[common],
                           help="score attribution methods with quality metrics over texts (table + report)")
    bench.add_argument("model_dir", type=Path, help="a save_pretrained folder (config.json, weights, tokenizer)")
    bench.add_argument("--texts", type=Path, required=True, help="a .jsonl, .txt or .csv file of texts (see explain)")
    bench.add_argument("--methods", default=None, metavar="M1,M2",
                       help="comma-separated methods (default all; see ats.list_methods())")
    bench.add_argument("--metrics", default=None, metavar="K1,K2",
                       help="comma-separated metrics (default the faithfulness family; see ats.list_metrics())")
    bench.add_argument("--target", default=None, help="as for explain")
    bench.add_argument("--removal", default="replace", choices=("replace", "delete"))
    bench.add_argument("--out", type=Path, default=Path("attnscope-benchmark"),
                       help="output folder; a rerun with the same settings resumes (default: attnscope-benchmark)")
    bench.add_argument("--quiet", action="store_true", help="no progress bar")

    heads = sub.add_parser("heads", parents=[common], help="per-head statistics (previous-token, induction, entropy, ...) over texts")
    heads.add_argument("model_dir", type=Path)
    heads.add_argument("--texts", type=Path, required=True)
    heads.add_argument("--out", type=Path, default=Path("attnscope-heads"))
    heads.add_argument("--batch-size", type=int, default=8)
    heads.add_argument("--quiet", action="store_true")
    return parser


def read_corpus_file(path: Path, *, text_column: str | None = None, label_column: str | None = None,
                     split: str | None = None):
    """The corpus in ``path`` (see attnscope.attribution.sources); a UsageError names what is wrong with it."""
    from .attribution.sources import FILE_SUFFIXES, read_corpus

    if not path.exists():
        raise UsageError(f"--texts {path}: no such file")
    if path.is_file() and path.suffix not in FILE_SUFFIXES:
        raise UsageError(f"--texts {path}: unsupported file type {path.suffix or '(none)'!r}; use "
                         f"{', '.join(FILE_SUFFIXES)} or a datasets save_to_disk folder")
    try:
        return read_corpus(path, labels=label_column, text_column=text_column, split=split)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--texts {path}: cannot read it ({exc.__class__.__name__}: {exc})") from None
    except (ValueError, ImportError) as exc:
        raise UsageError(f"--texts {path}: {exc}") from None


def read_texts(path: Path) -> list[str]:
    """Texts from a corpus file or folder; a UsageError names what is wrong with it."""
    return read_corpus_file(path).texts


def _check_model_dir(path: Path) -> None:
    if not path.is_dir():
        raise UsageError(f"model directory {path} does not exist")
    if not (path / "config.json").is_file():
        raise UsageError(f"{path} is not a save_pretrained folder: it has no config.json")


def validate(args: argparse.Namespace) -> list[str] | None:
    """Every usage check that needs no torch; returns the texts to process."""
    if args.command in ("explain", "heads", "benchmark"):
        _check_model_dir(args.model_dir)
    if args.command == "benchmark":
        try:
            args.methods = None if args.methods is None else [catalog.get(m.strip()).name for m in args.methods.split(",")]
            args.metrics = None if args.metrics is None else [metric_catalog.get(m.strip()).name
                                                              for m in args.metrics.split(",")]
            if args.metrics is not None:
                metric_catalog.resolve_metrics(args.metrics, rationale=False, labels=False)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        return read_texts(args.texts)
    if args.command in ("explain", "heads"):
        if args.batch_size < 1:
            raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.command == "explain":
        try:
            spec = catalog.get(args.method)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        for option in ("n_steps", "n_samples"):
            value, flag = getattr(args, option), "--" + option.replace("_", "-")
            if value is None:
                continue
            if spec.option(option) is None:
                raise UsageError(f"{flag} applies to {_takers(option)}, not --method {args.method}")
            if value < 1:
                raise UsageError(f"{flag} must be >= 1, got {value}")
        if args.engine == "ray" and (args.num_workers < 1 or args.num_cpus <= 0 or args.num_gpus < 0):
            raise UsageError(f"--num-workers must be >= 1 and --num-cpus > 0, --num-gpus >= 0 (got {args.num_workers}, "
                             f"{args.num_cpus}, {args.num_gpus})")
        if args.text is not None:
            if not args.text.strip():
                raise UsageError("--text is empty")
            args.labels = None
            return [args.text]
        corpus = read_corpus_file(args.texts, text_column=args.text_column, label_column=args.label_column,
                                  split=args.split)
        args.labels = corpus.labels
        return corpus.texts
    if args.command == "heads":
        return read_texts(args.texts)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its message
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        texts = validate(args)
    except UsageError as exc:
        print(f"attnscope {args.command}: error: {exc}", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        if args.command == "demo":
            from .demo import main as demo

            return demo()
        from . import commands

        return getattr(commands, args.command)(args, texts)
    except KeyboardInterrupt:
        print("attnscope: interrupted", file=sys.stderr)
        return 1
    except Exception as exc:  # one clear line; the traceback only under --debug
        if args.debug:
            raise
        first = (str(exc).strip().splitlines() or [""])[0]  # one line; --debug shows everything
        print(f"attnscope {args.command}: error: {exc.__class__.__name__}: {first}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
