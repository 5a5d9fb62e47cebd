"""The ``attnscope`` command line: ``demo``, ``explain``, ``heads`` and ``benchmark``.

Usage errors (exit 2) are found before torch is imported; failures exit 1 with one line (the traceback only with
``--debug``); progress bars go to stderr.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Sequence

from .attribution import catalog  # torch-free: unknown methods and options are usage errors found before torch loads
from .quality import metrics as metric_catalog  # torch-free too

STDIN = Path("-")
STDIN_HELP = "'-' reads standard input (one text per line, or JSON lines with a 'text' key)"
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
    parser.add_argument("--version", action="version", version=f"attnscope {_version()}",
                        help="print attnscope's version and exit")
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
                                                   ".parquet file, or a Hugging Face datasets save_to_disk folder; "
                                                   f"{STDIN_HELP}")
    explain.add_argument("--text-column", default=None, help="the column holding the texts (default: text, sentence, "
                                                             "content or document)")
    explain.add_argument("--label-column", default=None, help="a column of gold labels (enables the error breakdown)")
    explain.add_argument("--split", default=None, help="the split of a saved DatasetDict")
    explain.add_argument("--method", default="saliency", metavar="METHOD",
                         help=f"one of: {', '.join(catalog.names())} (default: saliency; `python -c 'import attnscope; "
                              "print(attnscope.list_methods())'` describes them)")
    explain.add_argument("--target", default=None,
                         help="class index or token id (an integer), 'next' (next token), 'similarity:TEXT' (cosine "
                              "of the sentence embedding with TEXT's, for sentence encoders such as MiniLM), or text "
                              "to continue with (default: the predicted class, or the next token)")
    explain.add_argument("--out", type=Path, default=Path("attnscope-out"), help="output folder (default: attnscope-out)")
    explain.add_argument("--batch-size", type=int, default=8)
    explain.add_argument("--n-steps", type=int, default=None,
                         help=f"integration points or samples of {_takers('n_steps')} (default: 32)")
    explain.add_argument("--n-samples", type=int, default=None,
                         help=f"coalitions or permutations of {_takers('n_samples')} (default: 25; kernel_shap: at "
                              "least 2n + 4)")
    explain.add_argument("--tolerance", type=float, default=None,
                         help=f"for {_takers('tolerance')}: sample in rounds until every feature's standard error is "
                              "<= this, in the target's units (--n-samples is then the most drawn)")
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
    bench.add_argument("--texts", type=Path, required=True,
                       help=f"a .jsonl, .txt or .csv file of texts (see explain); {STDIN_HELP}")
    bench.add_argument("--methods", default=None, metavar="M1,M2",
                       help="comma-separated methods (default all; see ats.list_methods())")
    bench.add_argument("--metrics", default=None, metavar="K1,K2",
                       help="comma-separated metrics (default the faithfulness family; see ats.list_metrics())")
    bench.add_argument("--target", default=None, help="as for explain")
    bench.add_argument("--removal", default="replace", choices=("replace", "delete"))
    bench.add_argument("--out", type=Path, default=Path("attnscope-benchmark"),
                       help="output folder; a rerun with the same settings resumes (default: attnscope-benchmark)")
    bench.add_argument("--quiet", action="store_true", help="no progress bar")

    heads = sub.add_parser("heads", parents=[common],
                           help="per-head statistics (previous-token, induction, entropy, ...) over texts",
                           description="Per-head attention statistics pooled over texts (previous-token, duplicate-"
                                       "token, first-token, entropy, distance; induction with --induction), written "
                                       "as a table (heads.parquet or .csv) and an HTML report (index.html).")
    heads.add_argument("model_dir", type=Path, help="a save_pretrained folder (config.json, weights, tokenizer)")
    heads.add_argument("--texts", type=Path, default=None,
                       help=f"a .jsonl, .txt or .csv file of texts (see explain); {STDIN_HELP}; optional with "
                            "--induction, which then generates repeated random token segments")
    heads.add_argument("--induction", action="store_true",
                       help="add the induction score: on --texts (rows whose token repeats --segment-len back), or, "
                            "without --texts, on --n-sequences generated [bos, segment, segment] sequences")
    heads.add_argument("--segment-len", type=int, default=None,
                       help="length of the repeated segment the induction score looks back over (default: 16)")
    heads.add_argument("--n-sequences", type=int, default=64,
                       help="generated sequences for --induction without --texts (default: 64)")
    heads.add_argument("--seed", type=int, default=0, help="seed of the generated sequences (default: 0)")
    heads.add_argument("--out", type=Path, default=Path("attnscope-heads"),
                       help="output folder for heads.parquet/.csv and index.html (default: attnscope-heads)")
    heads.add_argument("--batch-size", type=int, default=8, help="texts per forward pass (default: 8)")
    heads.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def read_corpus_file(path: Path, *, text_column: str | None = None, label_column: str | None = None,
                     split: str | None = None):
    """The corpus in ``path`` (see attnscope.attribution.sources), or on standard input for ``-``; a UsageError
    names what is wrong with it."""
    from .attribution.sources import FILE_SUFFIXES, read_corpus

    if path == STDIN:
        try:
            return read_corpus(_stdin_rows(), labels=label_column, text_column=text_column)
        except (ValueError, ImportError) as exc:
            raise UsageError(f"--texts -: {exc}") from None
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


def _stdin_rows():
    """``--texts -``: standard input as a frame when its first line is a JSON object (JSON lines), else as a list of
    texts (one per line)."""
    import json

    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError("--texts -: standard input is a terminal; pipe the texts in (e.g. `cat texts.txt | attnscope ...`)")
    try:
        raw = sys.stdin.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--texts -: cannot read standard input ({exc.__class__.__name__}: {exc})") from None
    lines = [line for line in raw.splitlines() if line.strip()]
    if not lines:
        raise UsageError("--texts - (standard input) holds no texts")
    try:
        jsonl = lines[0].lstrip().startswith("{") and isinstance(json.loads(lines[0]), dict)
    except json.JSONDecodeError:
        jsonl = False
    if not jsonl:
        return [line.strip() for line in lines]
    import pandas as pd

    from .attribution.sources import json_lines

    return pd.DataFrame(json_lines(raw, "standard input"))  # a bad line: ValueError -> UsageError in the caller

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
        if args.tolerance is not None:
            if spec.option("tolerance") is None:
                raise UsageError(f"--tolerance applies to {_takers('tolerance')}, not --method {args.method}")
            if not math.isfinite(args.tolerance) or args.tolerance <= 0:
                raise UsageError(f"--tolerance must be a finite number > 0, got {args.tolerance}")
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
        for flag, value, low in (("--segment-len", args.segment_len, 2), ("--n-sequences", args.n_sequences, 1)):
            if value is not None and value < low:
                raise UsageError(f"{flag} must be >= {low}, got {value}")
        if args.texts is None:
            if not args.induction:
                raise UsageError("heads needs --texts FILE (or --induction, which generates its own sequences)")
            return None
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
