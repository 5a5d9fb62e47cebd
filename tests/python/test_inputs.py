"""The one input normaliser (attnscope.inputs.model_inputs): every form users pass, every check, and the same
inputs giving the same results through capture, attribution, generation and head statistics."""

from __future__ import annotations

import pytest
import torch
from attribution_models import tiny_bert, tiny_gpt2, word_tokenizer

import attnscope as ats
from attnscope.inputs import max_positions, model_inputs, token_sequences

TEXTS = ["the cat sat on the mat", "a dog ran"]


@pytest.fixture(scope="module")
def gpt2():
    tok = word_tokenizer(bert_style=False)
    return tiny_gpt2(), tok


def _no_pad_tokenizer():
    """A GPT-2-style tokenizer: no pad token (its EOS is [SEP])."""
    import copy

    tok = copy.deepcopy(word_tokenizer(bert_style=False))
    tok.pad_token = None
    tok.eos_token = "[SEP]"
    return tok


def test_strings_equal_the_padded_encoding(gpt2):
    model, tok = gpt2
    from_strings = model_inputs(TEXTS, tokenizer=tok, model=model)
    enc = tok(TEXTS, return_tensors="pt", padding=True)
    from_encoding = model_inputs(enc, model=model)
    assert torch.equal(from_strings.input_ids, from_encoding.input_ids)
    assert torch.equal(from_strings.attention_mask, from_encoding.attention_mask)
    single = model_inputs(TEXTS[1], tokenizer=tok, model=model)
    assert single.batch == 1 and single.seq == 3


def test_encodings_without_return_tensors_are_padded(gpt2):
    model, tok = gpt2
    ragged = tok(TEXTS)  # lists of different lengths
    got = model_inputs(ragged, tokenizer=tok, model=model)
    want = tok(TEXTS, return_tensors="pt", padding=True)
    assert torch.equal(got.input_ids, want["input_ids"]) and torch.equal(got.attention_mask, want["attention_mask"])
    one = model_inputs(tok(TEXTS[0]), tokenizer=tok, model=model)  # a single encoding's flat lists
    assert one.input_ids.shape == (1, 6)
    assert model_inputs([5, 6, 7], model=model).input_ids.tolist() == [[5, 6, 7]]
    assert model_inputs(torch.tensor([5, 6, 7])).input_ids.shape == (1, 3)


def test_a_tokenizer_without_pad_token_pads_with_eos_on_its_side_and_stays_unchanged(gpt2):
    model, _ = gpt2
    tok = _no_pad_tokenizer()
    tok.padding_side = "left"
    got = model_inputs(TEXTS, tokenizer=tok, model=model)
    eos = tok.eos_token_id
    assert got.input_ids[1, :3].tolist() == [eos] * 3 and got.attention_mask[1].tolist() == [0, 0, 0, 1, 1, 1]
    assert tok.pad_token is None  # the user's tokenizer is not changed
    res = ats.attribute(model, TEXTS, method="saliency", tokenizer=tok)
    assert res.scores.shape == (2, 6) and bool((res.scores[1, :3] == 0).all())


def test_word_ids_follow_the_padding():
    tok = word_tokenizer()
    got = model_inputs(["the cat", "a big red dog"], tokenizer=tok, model=tiny_bert())
    assert got.word_ids[0][:4] == [None, 0, 1, None] and len(got.word_ids[0]) == got.seq


@pytest.mark.parametrize(
    ("inputs", "kwargs", "error", "message"),
    [
        ([], {}, ValueError, "inputs is empty"),
        ("", {"tokenizer": True}, ValueError, r"inputs\[0\] is an empty string"),
        ("the cat", {}, ValueError, "inputs is text, so it needs tokenizer="),
        ({"attention_mask": torch.ones(1, 3)}, {}, ValueError, "inputs has no 'input_ids'"),
        (torch.ones(1, 3), {}, TypeError, "input_ids must be an integer tensor"),
        (torch.zeros(1, 0, dtype=torch.long), {}, ValueError, r"got shape \(1, 0\)"),
        ({"input_ids": torch.ones(1, 3, dtype=torch.long), "attention_mask": torch.ones(1, 4)}, {}, ValueError,
         "attention_mask has shape"),
        ({"input_ids": torch.ones(1, 3, dtype=torch.long), "attention_mask": torch.zeros(1, 3)}, {}, ValueError,
         "at least one non-padding token"),
        (torch.tensor([[1, 2, 500]]), {"model": True}, ValueError,
         r"token id 500, outside the model's vocabulary of 26 tokens \(0..25\)"),
        (torch.ones(1, 70, dtype=torch.long), {"model": True}, ValueError,
         r"70 tokens, more than the 64 positions of GPT2LMHeadModel; truncate them"),
        (3.5, {}, TypeError, "got float"),
    ],
)
def test_bad_inputs_get_clear_errors(gpt2, inputs, kwargs, error, message):
    model, tok = gpt2
    kwargs = {k: (model if k == "model" else tok) for k in kwargs}
    with pytest.raises(error, match=message):
        model_inputs(inputs, **kwargs)


def test_a_mismatched_tokenizer_is_named():
    model = tiny_gpt2()
    big = _no_pad_tokenizer()
    big.add_tokens([f"extra{i}" for i in range(10)])
    with pytest.raises(ValueError, match="token id 35, outside the model's vocabulary of 26 tokens .* the tokenizer has 36 tokens: is it the model's own"):
        model_inputs(["extra9"], tokenizer=big, model=model)


def test_max_positions_by_family():
    import transformers as tf

    assert max_positions(tiny_gpt2()) == 64
    roberta = tf.RobertaModel(tf.RobertaConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                               intermediate_size=8, max_position_embeddings=34, pad_token_id=1))
    assert max_positions(roberta) == 32  # positions start after the padding index
    t5 = tf.T5Model(tf.T5Config(vocab_size=30, d_model=8, d_kv=4, d_ff=8, num_layers=1, num_heads=2))
    assert max_positions(t5) is None  # relative positions: no limit from the config


def test_token_sequences_truncate_with_a_warning(gpt2):
    model, _ = gpt2
    with pytest.warns(UserWarning, match="1 of 2 texts are longer than the model's maximum of 64 tokens"):
        seqs, cut = token_sequences({"input_ids": [[1] * 70, [2] * 5]}, model=model)
    assert cut == 1 and [len(s) for s in seqs] == [64, 5]


def test_every_entry_point_takes_strings(gpt2):
    model, tok = gpt2
    enc = tok(TEXTS, return_tensors="pt", padding=True)
    torch.testing.assert_close(ats.capture_attention(model, TEXTS, tokenizer=tok).weights,
                               ats.capture_attention(model, enc).weights)
    torch.testing.assert_close(ats.attribute(model, TEXTS, method="saliency", tokenizer=tok).scores,
                               ats.attribute(model, enc, method="saliency", tokenizer=tok).scores)
    gen = ats.attribute_generation(model, tok, "the cat sat", continuation="on the", progress=False)
    ids = ats.attribute_generation(model, tok, tok("the cat sat")["input_ids"], continuation="on the", progress=False)
    assert torch.equal(gen.matrix, ids.matrix)
    hs = ats.head_stats(model, tok, TEXTS, progress=False)
    assert hs.n_tokens == 9
