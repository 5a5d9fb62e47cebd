"""The real `attnscope` command in a subprocess: help, exit codes, usage errors before torch is imported."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from tables import read_table


def run(*args, timeout=600):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "attnscope", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_help_reads_well():
    out = run("--help")
    assert out.returncode == 0
    assert "explain" in out.stdout and "heads" in out.stdout and "Exit status" in out.stdout
    sub = run("explain", "--help")
    assert sub.returncode == 0 and "--method" in sub.stdout and "--texts" in sub.stdout


@pytest.fixture
def model_dir(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    return tmp_path / "m"


def one_line_error(out, *needles):
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    for needle in needles:
        assert needle in lines[0]


def test_missing_model_dir(tmp_path):
    one_line_error(run("explain", tmp_path / "nope", "--text", "hi"), "does not exist")


def test_unknown_method(model_dir):
    one_line_error(run("explain", model_dir, "--text", "hi", "--method", "magic"), "unknown method 'magic'", "saliency")


def test_empty_text_file(model_dir, tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n")
    one_line_error(run("explain", model_dir, "--texts", tmp_path / "empty.txt"), "holds no texts")


def test_unreadable_file(model_dir, tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\x00bad")
    one_line_error(run("explain", model_dir, "--texts", tmp_path / "bad.txt"), "cannot read it")
    one_line_error(run("heads", model_dir, "--texts", tmp_path / "missing.jsonl"), "no such file")


def test_usage_errors_do_not_import_torch(model_dir):
    code = ("import sys; from attnscope.cli import main; rc = main(['explain', %r, '--text', 'x', '--method', 'nope']);"
            " print(rc, 'torch' in sys.modules)" % str(model_dir))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["2", "False"], out.stdout + out.stderr


def test_no_command_prints_help_and_exits_2():
    out = run()
    assert out.returncode == 2 and "usage" in out.stdout


def test_cli_methods_and_options_come_from_the_catalog():
    from attnscope.attribution import catalog

    out = run("explain", "--help")
    for name in catalog.names():
        assert name in out.stdout
    takers = catalog.all_option_names()
    assert ", ".join(takers["n_samples"]) in " ".join(out.stdout.split())


def test_explain_minilm_matches_python_api(tmp_path, minilm_path):
    import torch
    from transformers import AutoModel, AutoTokenizer

    import attnscope as ats
    from attnscope.attribution import Similarity

    text, reference = "A man is playing a guitar.", "Someone plays music."
    out = run("explain", minilm_path, "--text", text, "--method", "saliency", "--target", f"similarity:{reference}",
              "--out", tmp_path / "out", "--quiet")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "out" / "index.html").exists()
    table = read_table(tmp_path / "out", "attributions")
    tok = AutoTokenizer.from_pretrained(minilm_path)
    model = AutoModel.from_pretrained(minilm_path).eval()
    res = ats.attribute(model, tok([text], return_tensors="pt"), method="saliency", target=Similarity(reference),
                        tokenizer=tok)
    assert list(table["token"]) == res.tokens[0]
    assert (torch.tensor(table["score"].values) - res.scores[0]).abs().max().item() <= 1e-5


def test_explain_and_heads_on_the_organism(tmp_path):

    from attnscope.organisms import path

    texts = tmp_path / "texts.jsonl"
    texts.write_text('{"text": "t1 t5 t9 t2 t1 t5 t9"}\n{"text": "t3 t4 t3"}\n')
    out = run("explain", path("induction"), "--texts", texts, "--method", "input_x_gradient", "--out", tmp_path / "x")
    assert out.returncode == 0, out.stderr
    table = read_table(tmp_path / "x", "attributions")
    assert sorted(table["example"].unique()) == [0, 1]
    import torch

    import attnscope as ats

    model, tok = ats.organisms.load("induction")
    for example, text in enumerate(["t1 t5 t9 t2 t1 t5 t9", "t3 t4 t3"]):
        res = ats.attribute(model, tok([text], return_tensors="pt"), method="input_x_gradient", tokenizer=tok)
        rows = table[table["example"] == example]
        assert list(rows["token"]) == res.tokens[0]
        assert (torch.tensor(rows["score"].values) - res.scores[0]).abs().max().item() <= 1e-5
    heads = run("heads", path("induction"), "--texts", texts, "--out", tmp_path / "h", "--quiet")
    assert heads.returncode == 0, heads.stderr
    assert (tmp_path / "h" / "index.html").exists() and len(read_table(tmp_path / "h", "heads")) > 0


def test_failure_is_one_line_and_exit_1(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text('{"model_type": "no-such-family"}')
    out = run("explain", tmp_path / "m", "--text", "hi")
    assert out.returncode == 1
    assert len(out.stderr.strip().splitlines()) == 1 and "error" in out.stderr
    debug = run("--debug", "explain", tmp_path / "m", "--text", "hi")
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_interrupted_texts_run_resumes(tmp_path):
    from attnscope.organisms import path

    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(f"t{i} t{i + 1} t{i + 2} t{i}" for i in range(12)) + "\n")
    first = run("explain", path("induction"), "--texts", texts, "--batch-size", "3", "--out", tmp_path / "o", "--quiet")
    assert first.returncode == 0, first.stderr
    rows = (tmp_path / "o" / "rows.jsonl").read_text().splitlines()
    (tmp_path / "o" / "rows.jsonl").write_text("\n".join(rows[:5]) + "\n" + rows[5][:10])  # cut mid-line
    again = run("explain", path("induction"), "--texts", texts, "--batch-size", "3", "--out", tmp_path / "o")
    assert again.returncode == 0, again.stderr
    assert " 5/12 " in again.stderr  # the progress bar starts at the 5 finished rows
    import json

    lines = (tmp_path / "o" / "rows.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines[:5]] == [json.loads(line) for line in rows[:5]]
    assert sorted(json.loads(line)["index"] for line in lines) == list(range(12))  # every line whole, none twice


def test_explain_a_labelled_parquet_corpus(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    from attribution_models import tiny_bert, word_tokenizer
    from corpus_models import random_texts

    folder = tmp_path / "clf"
    tiny_bert().save_pretrained(folder)
    word_tokenizer().save_pretrained(folder)
    texts = random_texts(24, seed=7)
    pd.DataFrame({"body": texts, "gold": [i % 3 for i in range(24)]}).to_parquet(tmp_path / "c.parquet")
    one_line_error(run("explain", folder, "--texts", tmp_path / "c.parquet"), "no text column", "columns: body, gold")
    one_line_error(run("explain", folder, "--texts", tmp_path / "c.parquet", "--text-column", "body", "--engine", "ray",
                       "--num-workers", "0"), "--num-workers must be >= 1")
    out = run("explain", folder, "--texts", tmp_path / "c.parquet", "--text-column", "body", "--label-column", "gold",
              "--out", tmp_path / "o", "--quiet")
    assert out.returncode == 0, out.stderr
    examples = pd.read_parquet(tmp_path / "o" / "examples.parquet")
    assert examples["text"].tolist() == texts and examples["label"].tolist() == [i % 3 for i in range(24)]
    page = (tmp_path / "o" / "index.html").read_text()
    assert 'class="ats-corpus" data-rows="24"' in page
    assert "tokens that drive wrong predictions" in page and "surrogate" in page


def test_explain_kernel_shap_stops_at_the_tolerance(tmp_path):
    """--tolerance reaches the Shapley estimators: the values are within a few tolerances of the exact ones (the
    default budget of 25 coalitions without it is far off: the first check fails if the option is dropped)."""
    import torch

    import attnscope as ats
    from attnscope.organisms import path

    text, tol = "t3 t17 t42 t9 t64 t3 t17", 0.05
    model, tok = ats.organisms.load("induction")
    exact = ats.attribute(model, tok([text], return_tensors="pt"), method="kernel_shap", mode="exact",
                          tokenizer=tok).scores[0]
    errors = {}
    for extra in (("--tolerance", tol), ()):
        out = run("explain", path("induction"), "--text", text, "--method", "kernel_shap", *extra,
                  "--out", tmp_path / str(len(extra)), "--quiet")
        assert out.returncode == 0, out.stderr
        scores = torch.tensor(read_table(tmp_path / str(len(extra)), "attributions")["score"].values)
        errors[len(extra)] = (scores - exact).abs().max().item()
    assert errors[2] <= 4 * tol < errors[0], errors


@pytest.mark.parametrize("args,msg", [
    (("--method", "saliency", "--tolerance", "0.1"), "--tolerance applies to kernel_shap, shapley_sampling, not "
                                                     "--method saliency"),
    (("--method", "kernel_shap", "--tolerance", "0"), "--tolerance must be a finite number > 0, got 0.0"),
    (("--method", "shapley_sampling", "--tolerance", "nan"), "--tolerance must be a finite number > 0, got nan"),
])
def test_bad_tolerance_is_a_usage_error(model_dir, args, msg):
    out = run("explain", model_dir, "--text", "x", *args)
    assert out.returncode == 2 and msg in " ".join(out.stderr.split()), out.stderr
