"""Inputs the way a new user passes them (issue 21, item 1), through capture_attention, attribute,
attribute_dataset and the command line, on tiny random GPT-2, Llama and Qwen2 models saved to folders with their
own kind of tokenizer (GPT-2 and Llama without a pad token), and BART/T5 for the encoder-decoder side."""

from __future__ import annotations

import json

import pytest
import torch
from user_models import load, saved

import attnscope as ats

TEXTS = ["The cat sat on the mat.", "A dog ran."]
CAUSAL = ["gpt2", "llama", "qwen2"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("user_models"))
    return {kind: saved(kind, root) for kind in CAUSAL}


def _unpadded(model, tok, text):
    ids = tok(text, return_tensors="pt")
    return ats.attribute(model, ids, method="saliency", tokenizer=tok).scores[0]


@pytest.mark.parametrize("kind", CAUSAL)
def test_strings_encodings_and_ragged_lists_agree(folders, kind):
    model, tok = load(folders[kind])
    before = (tok.pad_token, tok.padding_side)
    from_strings = ats.attribute(model, TEXTS, method="saliency", tokenizer=tok)
    ragged = ats.attribute(model, tok(TEXTS), method="saliency", tokenizer=tok)  # no return_tensors: lists
    assert torch.equal(from_strings.scores, ragged.scores)
    assert (tok.pad_token, tok.padding_side) == before  # the user's tokenizer is not changed
    # The padded short example equals the same text alone: padding (EOS where there is no pad token) is masked.
    short = from_strings.attention_mask[1].bool()
    torch.testing.assert_close(from_strings.scores[1][short], _unpadded(model, tok, TEXTS[1]), atol=1e-5, rtol=1e-4)
    side = tok.padding_side
    assert from_strings.attention_mask[1, 0 if side == "left" else -1] == 0  # padded on the tokenizer's side
    cap = ats.capture_attention(model, TEXTS, tokenizer=tok)
    alone = ats.capture_attention(model, TEXTS[1], tokenizer=tok)
    n = int(short.sum())
    rows = short.nonzero().flatten()
    torch.testing.assert_close(cap.weights[:, 1][..., rows, :][..., rows], alone.weights[:, 0][..., :n, :n],
                               atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_attribute_dataset_takes_a_tokenizer_without_pad_token(folders, kind, tmp_path):
    model, tok = load(folders[kind])
    assert tok.pad_token is None
    ds = ats.attribute_dataset(model, tok, TEXTS, method="saliency", batch_size=2, progress=False)
    for ex, text in zip(ds.examples, TEXTS):
        torch.testing.assert_close(torch.tensor(ex["scores"]), _unpadded(model, tok, text).double().float(),
                                   atol=1e-5, rtol=1e-4)
    assert tok.pad_token is None


def test_too_long_names_both_lengths_and_truncation_is_opt_in(folders):
    model, tok = load(folders["gpt2"])
    long_text = " ".join(["The cat sat on the mat."] * 20)
    n = len(tok(long_text)["input_ids"])
    assert n > 64
    for call in (lambda **kw: ats.capture_attention(model, long_text, tokenizer=tok, **kw),
                 lambda **kw: ats.attribute(model, long_text, method="saliency", tokenizer=tok, **kw)):
        with pytest.raises(ValueError, match=rf"{n} tokens, more than the 64 positions .* truncation=True"):
            call()
        with pytest.warns(UserWarning, match="1 of 1 examples are longer than the 64 positions"):
            res = call(truncation=True)
        first = tok(long_text, return_tensors="pt")["input_ids"][:, :64]
        if isinstance(res, ats.AttentionResult):
            torch.testing.assert_close(res.weights, ats.capture_attention(model, first).weights)
        else:
            torch.testing.assert_close(res.scores, ats.attribute(model, first, method="saliency").scores)


def test_truncation_keeps_each_rows_first_tokens_on_its_padding_side(folders):
    model, tok = load(folders["llama"])  # left padding
    long_text = " ".join(["The cat sat on the mat."] * 20)
    with pytest.warns(UserWarning, match="1 of 2 examples"):
        res = ats.capture_attention(model, [long_text, "A dog ran."], tokenizer=tok, truncation=True)
    assert res.weights.shape[-1] == 64
    want = ats.capture_attention(model, tok(long_text, return_tensors="pt")["input_ids"][:, :64])
    torch.testing.assert_close(res.weights[:, :1], want.weights)
    assert res.attention_mask[1, :-5].eq(0).all()  # the short row stays left-padded


def test_out_of_vocabulary_and_mismatched_tokenizer(folders):
    model, tok = load(folders["llama"])
    gpt2_tok = load(folders["gpt2"])[1]  # 320 tokens for a 104-token model
    vocab = model.config.vocab_size
    with pytest.raises(ValueError, match=rf"token id {vocab + 5}, outside the model's vocabulary of {vocab} tokens"):
        ats.capture_attention(model, torch.tensor([[1, 2, vocab + 5]]))
    text = "He is walking to the station today."
    big = max(gpt2_tok(text)["input_ids"])
    assert big >= vocab
    for call in (lambda: ats.attribute(model, text, method="saliency", tokenizer=gpt2_tok),
                 lambda: ats.attribute_dataset(model, gpt2_tok, [text], progress=False)):
        with pytest.raises(ValueError, match=rf"outside the model's vocabulary of {vocab} tokens .*the tokenizer has "
                                             rf"{len(gpt2_tok)} tokens: is it the model's own"):
            call()


@pytest.mark.parametrize("empty", ["", [], "   "])
def test_empty_inputs(folders, empty):
    model, tok = load(folders["gpt2"])
    with pytest.raises(ValueError, match="empty"):
        ats.capture_attention(model, empty, tokenizer=tok)
    with pytest.raises(ValueError, match="empty|not a non-empty string"):
        ats.attribute_dataset(model, tok, [empty] if isinstance(empty, str) else empty, progress=False)


def test_encoder_decoder_take_strings():
    from tiny_models import build

    from attribution_models import word_tokenizer

    tok = word_tokenizer(bert_style=False)
    for kind in ("bart_lm", "t5"):
        model = build(kind)
        res = ats.capture_attention(model, ["the cat sat on the mat", "a dog ran"], tokenizer=tok)
        assert res.cross is not None and res.encoder.tokens[0][:2] == ["the", "cat"]
        attr = ats.attribute(model, ["the cat sat", "a dog"], method="saliency", tokenizer=tok)
        assert attr.scores.shape[0] == 2 and bool((attr.scores[1][attr.attention_mask[1] == 0] == 0).all())


def test_cli_explain_reads_stdin_with_a_pad_less_tokenizer(folders, tmp_path, monkeypatch, capsys):
    import io

    from attnscope.cli import main

    model, tok = load(folders["gpt2"])
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(TEXTS) + "\n"))
    code = main(["explain", str(folders["gpt2"]), "--texts", "-", "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in (tmp_path / "out" / "rows.jsonl").read_text().splitlines()]
    assert [r["text"] for r in rows] == TEXTS
    for r, text in zip(rows, TEXTS):
        torch.testing.assert_close(torch.tensor(r["scores"]), _unpadded(model, tok, text), atol=1e-5, rtol=1e-4)
    assert tok.pad_token is None


@pytest.mark.parametrize("kind", ["bart_lm", "t5", "bert"])
def test_cli_explain_on_encoder_decoder_and_bert_folders(kind, tmp_path, capsys):
    """The command line loads BART/T5 with their LM head (before: the base model, which has no logits) and runs
    attribute_dataset on them (before: its prediction forward lacked decoder inputs on T5)."""
    from tiny_models import build
    from transformers import AutoModelForSeq2SeqLM, AutoModelForSequenceClassification

    from attribution_models import tiny_bert, word_tokenizer
    from attnscope.cli import main

    tok = word_tokenizer(bert_style=kind == "bert")
    model = tiny_bert() if kind == "bert" else build(kind)
    model.save_pretrained(tmp_path / kind)
    tok.save_pretrained(tmp_path / kind)
    code = main(["explain", str(tmp_path / kind), "--text", "the cat sat on the mat", "--out", str(tmp_path / "o"),
                 "--quiet"])
    assert code == 0, capsys.readouterr().err
    row = json.loads((tmp_path / "o" / "rows.jsonl").read_text().splitlines()[0])
    cls = AutoModelForSequenceClassification if kind == "bert" else AutoModelForSeq2SeqLM
    loaded = cls.from_pretrained(tmp_path / kind).eval()
    want = ats.attribute(loaded, "the cat sat on the mat", method="saliency", tokenizer=tok).scores[0]
    torch.testing.assert_close(torch.tensor(row["scores"]), want, atol=1e-5, rtol=1e-4)
