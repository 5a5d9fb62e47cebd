"""Tiny random Hugging Face models built from configs (no downloads), for exactness tests."""

from __future__ import annotations

import torch

VOCAB = 97
# Encoder-decoder families: BartModel (no head) and, with a language-model head, BART, T5 (relative position bias)
# and a Marian-style translation model.
SEQ2SEQ = ["bart", "bart_lm", "t5", "marian"]
# Every family build() knows.
FAMILIES = ["bert", "gpt2", "llama", "qwen2", "mistral", "gemma2", "gpt_oss", *SEQ2SEQ]


def _scale_qk(model, factor: float) -> None:
    """Scale q/k projections so that logits are large (makes soft-capping bite)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if any(part in name for part in ("q_proj.weight", "k_proj.weight")):
                p.mul_(factor)


def build(kind: str, attn: str = "sdpa"):
    import transformers as tf

    torch.manual_seed(0)
    common = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=4, max_position_embeddings=64)
    if kind == "bert":
        cfg = tf.BertConfig(**common)
        model = tf.BertModel(cfg, add_pooling_layer=False)
    elif kind == "gpt2":
        cfg = tf.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64)
        model = tf.GPT2LMHeadModel(cfg)
    elif kind == "llama":
        model = tf.LlamaForCausalLM(tf.LlamaConfig(**common, num_key_value_heads=4))
    elif kind == "qwen2":
        model = tf.Qwen2ForCausalLM(tf.Qwen2Config(**common, num_key_value_heads=2))
    elif kind == "mistral":
        model = tf.MistralForCausalLM(tf.MistralConfig(**common, num_key_value_heads=2, sliding_window=4))
    elif kind == "gemma2":
        cfg = tf.Gemma2Config(**common, num_key_value_heads=2, head_dim=8, attn_logit_softcapping=1.0,
                              final_logit_softcapping=None, sliding_window=4, query_pre_attn_scalar=8)
        model = tf.Gemma2ForCausalLM(cfg)
        _scale_qk(model, 8.0)
    elif kind == "gpt_oss":
        cfg = tf.GptOssConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=32, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2, head_dim=8, num_local_experts=2,
                              num_experts_per_tok=1, sliding_window=4, max_position_embeddings=64)
        model = tf.GptOssForCausalLM(cfg)
        with torch.no_grad():
            for layer in model.model.layers:
                layer.self_attn.sinks.normal_(0.0, 1.0)
    elif kind in ("bart", "bart_lm"):
        cfg = tf.BartConfig(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2,
                            encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=48,
                            decoder_ffn_dim=48, max_position_embeddings=64)
        model = tf.BartModel(cfg) if kind == "bart" else tf.BartForConditionalGeneration(cfg)
    elif kind == "t5":
        cfg = tf.T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_decoder_layers=2,
                          num_heads=4, relative_attention_num_buckets=8, relative_attention_max_distance=16,
                          decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
        model = tf.T5ForConditionalGeneration(cfg)
    elif kind == "marian":
        cfg = tf.MarianConfig(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2,
                              encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=48,
                              decoder_ffn_dim=48, max_position_embeddings=64, pad_token_id=0, eos_token_id=1,
                              decoder_start_token_id=0, scale_embedding=True)
        model = tf.MarianMTModel(cfg)
    else:
        raise KeyError(kind)
    model.eval()
    if attn == "sdpa" and not model._supports_sdpa:
        attn = "eager"  # e.g. Gemma2, gpt-oss: eager is their own default
    model.set_attn_implementation(attn)
    return model


def batch(kind: str, padding: str | None, length: int = 10):
    """input_ids and attention_mask; with padding, the second example is 3 tokens shorter."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, VOCAB, (2 if padding else 1, length), generator=g)
    mask = torch.ones_like(ids)
    if padding == "left":
        mask[1, :3] = 0
    elif padding == "right":
        mask[1, -3:] = 0
    ids = ids.masked_fill(mask == 0, 0)
    return {"input_ids": ids, "attention_mask": mask}


def seq2seq_batch(padding: str | None, length: int = 8, target: int = 5):
    """``batch`` plus decoder_input_ids ``[batch, target]`` starting with token 0 (the tiny models' start token)."""
    inputs = batch("t5", padding, length)
    g = torch.Generator().manual_seed(2)
    dec = torch.randint(3, VOCAB, (inputs["input_ids"].shape[0], target), generator=g)
    dec[:, 0] = 0
    return {**inputs, "decoder_input_ids": dec}


def eager_attentions_with_grad(kind: str, inputs, score):
    """The oracle for attention gradients: eager attention of ``kind`` with ``retain_grad()`` on every layer's
    weights, after ``score(outputs).sum().backward()``. Returns the weights (their ``.grad`` filled), first layer
    first."""
    import importlib

    model = build(kind, attn="eager")
    module = importlib.import_module(type(model).__module__)
    original = module.eager_attention_forward
    kept = []

    def spy(*args, **kwargs):
        out, weights = original(*args, **kwargs)
        weights.retain_grad()
        kept.append(weights)
        return out, weights

    module.eager_attention_forward = spy
    try:
        score(model(**inputs)).sum().backward()
    finally:
        module.eager_attention_forward = original
    return kept
