"""Models as a new user meets them: tiny random GPT-2, Llama, Qwen2 and BERT saved to folders with their own kind
of tokenizer (byte-level BPE without a pad token, SentencePiece-style BPE without one, WordPiece with one), trained
here on a few sentences so everything stays offline."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

CORPUS = ["The cat sat on the mat.", "A dog ran to the big house.", "The small red bird sings.",
          "She reads a long book at home.", "He is walking to the station today."]


def _bpe(kind: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None if kind == "gpt2" else "<unk>"))
    if kind == "gpt2":  # byte-level: a space is Ġ
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        specials, alphabet = ["<|endoftext|>"], pre_tokenizers.ByteLevel.alphabet()
    else:  # SentencePiece-style: a space is ▁
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        specials, alphabet = ["<unk>", "<s>", "</s>"], []
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=specials, initial_alphabet=alphabet)
    tok.train_from_iterator(CORPUS * 4, trainer)
    return tok


def gpt2_tokenizer():
    """GPT-2's kind: byte-level BPE, EOS ``<|endoftext|>``, no pad token."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=_bpe("gpt2"), eos_token="<|endoftext|>",
                                   bos_token="<|endoftext|>")


def llama_tokenizer():
    """Llama's kind: SentencePiece-style BPE (``▁``), ``<s>``/``</s>``, no pad token, left padding."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=_bpe("llama"), unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>", padding_side="left")


def _model(kind: str, vocab: int):
    import transformers as tf

    torch.manual_seed(0)
    common = dict(vocab_size=vocab, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=4, max_position_embeddings=64)
    if kind == "gpt2":
        return tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                                eos_token_id=0, bos_token_id=0))
    if kind == "llama":
        return tf.LlamaForCausalLM(tf.LlamaConfig(**common, num_key_value_heads=2, bos_token_id=1, eos_token_id=2))
    if kind == "qwen2":
        return tf.Qwen2ForCausalLM(tf.Qwen2Config(**common, num_key_value_heads=2, eos_token_id=0))
    raise KeyError(kind)


TOKENIZERS = {"gpt2": gpt2_tokenizer, "llama": llama_tokenizer, "qwen2": gpt2_tokenizer}


@functools.lru_cache(maxsize=None)
def saved(kind: str, root: str) -> Path:
    """``root/kind``: a save_pretrained folder (config, weights, tokenizer) of a tiny random ``kind`` model."""
    folder = Path(root) / kind
    tok = TOKENIZERS[kind]()
    _model(kind, len(tok)).eval().save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def load(folder: Path):
    """What a user writes: the model and tokenizer from the folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
