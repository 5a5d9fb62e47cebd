"""Tiny random models of the families with site adapters that tiny_models.py does not build (GPT-NeoX, RoBERTa,
DistilBERT), and one builder for all of them."""

from __future__ import annotations

import torch

from tiny_models import VOCAB, build as build_tiny

FAMILIES = ("llama", "qwen2", "mistral", "gemma2", "gpt2", "gpt_neox", "gpt_neox_serial", "bert", "roberta",
            "distilbert")


def build(kind: str):
    import transformers as tf

    torch.manual_seed(0)
    if kind in ("gpt_neox", "gpt_neox_serial"):
        cfg = tf.GPTNeoXConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                               num_attention_heads=4, max_position_embeddings=64,
                               use_parallel_residual=kind == "gpt_neox")
        model = tf.GPTNeoXForCausalLM(cfg)
    elif kind == "roberta":
        cfg = tf.RobertaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                               num_attention_heads=4, max_position_embeddings=70, pad_token_id=1)
        model = tf.RobertaModel(cfg, add_pooling_layer=False)
    elif kind == "distilbert":
        cfg = tf.DistilBertConfig(vocab_size=VOCAB, dim=32, hidden_dim=48, n_layers=2, n_heads=4,
                                  max_position_embeddings=64)
        model = tf.DistilBertModel(cfg)
    else:
        return build_tiny(kind)
    return model.eval()
