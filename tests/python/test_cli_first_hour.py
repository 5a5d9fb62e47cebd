"""The command line as a new user meets it (issue 21, item 4): a failed run does not block the corrected rerun of
the same --out, --version, heads --help describes every option and has --induction, --texts - reads standard
input, and explain --help lists the similarity target."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import attnscope
from attnscope.organisms import path as organism_path
from tables import read_table

TEXTS = "t1 t5 t9 t2 t1 t5 t9\nt3 t4 t3 t4\n"


def run(*args, stdin=None, timeout=600):
    """The real command in a subprocess (for what happens before torch loads: usage, help, version)."""
    return subprocess.run([sys.executable, "-m", "attnscope", *map(str, args)], input=stdin, capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, HF_HUB_OFFLINE="1"))


def main(capsys, *args) -> tuple[int, str]:
    """The command's entry point in this process (the model runs without a second torch import): (status, stderr)."""
    from attnscope.cli import main as cli_main

    code = cli_main([str(a) for a in args])
    return code, capsys.readouterr().err


def test_version():
    out = run("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"attnscope {attnscope.__version__}"


def test_heads_help_describes_every_option():
    from attnscope.cli import _parser

    parser = _parser()
    heads = next(a for a in parser._subparsers._group_actions[0].choices.items() if a[0] == "heads")[1]
    undocumented = [a.option_strings or [a.dest] for a in heads._actions if not a.help]
    assert undocumented == []
    text = " ".join(run("heads", "--help").stdout.split())
    for flag in ("--texts", "--induction", "--segment-len", "--n-sequences", "--seed", "--out", "--batch-size",
                 "--quiet", "model_dir", "'-' reads standard input"):
        assert flag in text


def test_explain_help_lists_the_similarity_target():
    text = " ".join(run("explain", "--help").stdout.split())
    assert "'similarity:TEXT'" in text and "'-' reads standard input" in text


def test_heads_induction_without_texts_finds_the_organisms_head(tmp_path, capsys):

    import attnscope as ats

    code, err = main(capsys, "heads", organism_path("induction"), "--induction", "--segment-len", "8", "--n-sequences",
                     "8", "--out", tmp_path / "h", "--quiet")
    assert code == 0, err
    table = read_table(tmp_path / "h", "heads")
    model, tok = ats.organisms.load("induction")
    want = ats.head_stats(model, tok, None, induction=True, segment_len=8, n_sequences=8, progress=False)
    got = table.sort_values(["layer", "head"])["induction"].tolist()
    assert got == pytest.approx(want["induction"].flatten().tolist(), abs=1e-6)
    assert main(capsys, "heads", organism_path("induction"), "--out", tmp_path / "x")[0] == 2  # texts or --induction


@pytest.mark.parametrize("stdin", [TEXTS, "\n".join(json.dumps({"text": t}) for t in TEXTS.split("\n") if t) + "\n"])
def test_texts_from_stdin_as_lines_or_json_lines(monkeypatch, stdin):
    import io

    from attnscope.cli import STDIN, read_texts

    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    assert read_texts(STDIN) == ["t1 t5 t9 t2 t1 t5 t9", "t3 t4 t3 t4"]


def test_texts_from_an_empty_stdin_is_a_usage_error():
    out = run("heads", organism_path("induction"), "--texts", "-", stdin="\n\n")
    assert out.returncode == 2 and "--texts - (standard input) holds no texts" in out.stderr


def test_a_failed_run_does_not_block_the_corrected_rerun(tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text(TEXTS)
    out = tmp_path / "out"
    code, err = main(capsys, "explain", organism_path("induction"), "--texts", texts, "--target", "99999", "--out", out,
                     "--quiet")
    assert code == 1 and "out of range" in err
    code, err = main(capsys, "explain", organism_path("induction"), "--texts", texts, "--target", "5", "--out", out,
                     "--quiet")
    assert code == 0, err
    assert json.loads((out / "meta.json").read_text())["complete"] is True
    # A completed run pins the folder: other settings are refused, the same settings reuse its rows.
    import attnscope as ats

    model, tok = ats.organisms.load("induction")
    with pytest.raises(ValueError, match="holds a completed attribution run with other settings"):
        ats.attribute_dataset(model, tok, TEXTS.split("\n")[:2], target=6, out=out, progress=False)
    rows = (out / "rows.jsonl").read_text()
    again = ats.attribute_dataset(model, tok, TEXTS.split("\n")[:2], target=5, out=out, progress=False)
    assert (out / "rows.jsonl").read_text() == rows  # nothing recomputed
    assert [ex["scores"] for ex in again.examples] == [json.loads(line)["scores"] for line in rows.splitlines()]


def test_an_unfinished_run_with_rows_is_replaced_with_a_warning(tmp_path):
    import warnings

    import attnscope as ats

    model, tok = ats.organisms.load("induction")
    texts = ["t1 t2 t1 t2", "t3 t4 t3"]
    ats.attribute_dataset(model, tok, texts, target=5, out=tmp_path, progress=False)
    meta = json.loads((tmp_path / "meta.json").read_text())
    (tmp_path / "meta.json").write_text(json.dumps({**meta, "complete": False}))  # as if it had stopped here
    with pytest.warns(UserWarning, match="unfinished attribution run with other settings .* 2 finished rows are dropped"):
        res = ats.attribute_dataset(model, tok, texts, target=6, out=tmp_path, progress=False)
    want = ats.attribute(model, texts[0], method="saliency", target=6, tokenizer=tok).scores[0].tolist()
    assert res.examples[0]["scores"] == pytest.approx(want, rel=1e-5)  # batched (padded) vs alone: float32 rounding
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same settings resume silently
        ats.attribute_dataset(model, tok, texts, target=6, out=tmp_path, progress=False)
