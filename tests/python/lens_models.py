"""Tiny random language models with their heads, for the logit lens and direct logit attribution (no downloads).

Every family the lens supports: Llama, Qwen2 (GQA), Mistral (sliding window), Gemma2 (sandwich norms, final logit
softcap), GPT-2 (tied unembedding), GPT-NeoX (parallel attention), BERT with its MLM head (post-LN).
"""

from __future__ import annotations

import torch

VOCAB = 97
FAMILIES = ("llama", "qwen2", "mistral", "gemma2", "gpt2", "gpt_neox", "bert")
DECODERS = FAMILIES[:-1]


_COMMON = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4,
               max_position_embeddings=64, bos_token_id=1, eos_token_id=2)
# family -> (config class, model class, config keywords beyond _COMMON); GPT-2 names its sizes its own way
_SPECS = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", dict(num_key_value_heads=4)),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", dict(num_key_value_heads=2)),
    "mistral": ("MistralConfig", "MistralForCausalLM", dict(num_key_value_heads=2, sliding_window=4)),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", dict(num_key_value_heads=2, head_dim=8, attn_logit_softcapping=50.0,
                                                         final_logit_softcapping=3.0, sliding_window=4,
                                                         query_pre_attn_scalar=8)),
    "gpt_neox": ("GPTNeoXConfig", "GPTNeoXForCausalLM", dict(use_parallel_residual=True, rotary_pct=0.5)),
    "bert": ("BertConfig", "BertForMaskedLM", {}),
}


def build(kind: str):
    import transformers as tf

    torch.manual_seed(0)
    if kind == "gpt2":
        model = tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=3, n_head=4, n_positions=64,
                                                 bos_token_id=1, eos_token_id=2))
    elif kind in _SPECS:
        config_cls, model_cls, extra = _SPECS[kind]
        model = getattr(tf, model_cls)(getattr(tf, config_cls)(**_COMMON, **extra))
    else:
        raise KeyError(kind)
    with torch.no_grad():  # random norm gains and biases, so a wrong norm or a missed bias shows
        for name, p in model.named_parameters():
            if any(s in name.lower() for s in ("norm", "ln_", "layernorm")) or name.endswith(".bias"):
                p.add_(torch.randn_like(p) * 0.3)
    return model.eval()


def batch(length: int = 9, padding: bool = True):
    """Two examples, the second left-padded by 3 (one example without padding)."""
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(3, VOCAB, (2 if padding else 1, length), generator=g)
    mask = torch.ones_like(ids)
    if padding:
        mask[1, :3] = 0
        ids = ids.masked_fill(mask == 0, 0)
    return {"input_ids": ids, "attention_mask": mask}
