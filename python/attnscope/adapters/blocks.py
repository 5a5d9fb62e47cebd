"""The attention block of each transformer layer, per family: which modules hold the value and output projections,
the norms around attention, and how many heads share which value projection.

Context mixing (``attnscope.lens.context_mixing``) decomposes an attention block's output into one vector per input
token; for that it needs the block's weights in one orientation, ``y = x @ W + b``, whatever the family stores
(``nn.Linear`` keeps ``W.T``, GPT-2's ``Conv1D`` keeps ``W``), and where the layer norms sit:

- pre-LN (GPT-2, Llama, Qwen2, Mistral): ``y = x + Attn(norm(x))``; the norm is applied to each position alone.
- post-LN (BERT, RoBERTa, MiniLM): ``y = norm(x + Attn(x))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

_LLAMA_LIKE = ("llama", "mistral", "qwen2", "qwen3")
_BERT_LIKE = ("bert", "roberta", "xlm-roberta", "electra")
SUPPORTED_FAMILIES: tuple[str, ...] = (*_LLAMA_LIKE, "gpt2", *_BERT_LIKE)


def _xw(module: nn.Module) -> tuple[Tensor, Tensor | None]:
    """``(W, b)`` with ``module(x) == x @ W + b`` for an ``nn.Linear`` or a GPT-2 ``Conv1D``."""
    if isinstance(module, nn.Linear):
        return module.weight.T, module.bias
    if type(module).__name__ == "Conv1D":
        return module.weight, module.bias
    raise TypeError(f"expected a Linear or Conv1D projection, got {type(module).__name__}")


@dataclass(frozen=True)
class AttentionBlock:
    """One layer's attention block.

    Attributes:
        index: layer index.
        layer: the whole transformer layer (value zeroing re-runs it).
        attention: the innermost attention module; its input is the attention input (after the pre-norm).
        value_module: the module whose output holds the value vectors ``[batch, seq, ...]``.
        value_features: the slice of ``value_module``'s last axis that holds the values (GPT-2 packs q, k, v).
        out_module: the output projection; its output is the attention output, bias included.
        pre_norm: the norm applied to the residual stream before attention (pre-LN), else None.
        post_norm: the LayerNorm applied to residual + attention output (post-LN), else None.
        num_heads, num_kv_heads, head_dim: query heads, value heads (GQA), per-head width.
    """

    index: int
    layer: nn.Module
    attention: nn.Module
    value_module: nn.Module
    value_features: slice
    out_module: nn.Module
    pre_norm: nn.Module | None
    post_norm: nn.LayerNorm | None
    num_heads: int
    num_kv_heads: int
    head_dim: int

    def value_projection(self) -> tuple[Tensor, Tensor | None]:
        """``(W_V [hidden, kv_heads·head_dim], b_V [kv_heads·head_dim] or None)`` in ``x @ W + b`` form."""
        w, b = _xw(self.value_module)
        s = self.value_features
        return w[:, s], (b[s] if b is not None else None)

    def output_projection(self) -> tuple[Tensor, Tensor | None]:
        """``(W_O [heads·head_dim, hidden], b_O [hidden] or None)`` in ``x @ W + b`` form."""
        return _xw(self.out_module)

    def pre_norm_bias(self) -> Tensor | None:
        """The additive part of the pre-norm (LayerNorm's beta); None for RMSNorm or post-LN blocks."""
        return getattr(self.pre_norm, "bias", None) if self.pre_norm is not None else None

    def value_head(self, head: int) -> int:
        """The value head that query head ``head`` reads (GQA maps groups of query heads to one value head)."""
        return head // (self.num_heads // self.num_kv_heads)


def _base(model: nn.Module) -> nn.Module:
    prefix = getattr(model, "base_model_prefix", "")
    base = getattr(model, prefix, None) if prefix else None
    return base if isinstance(base, nn.Module) else model


def attention_blocks(model: nn.Module) -> list[AttentionBlock]:
    """The attention block of every layer of ``model``, first layer first.

    Raises ``ValueError`` naming the supported families for any other model (e.g. Gemma2's norm after attention
    output is not a per-token linear map, so its blocks cannot be decomposed this way).
    """
    cfg = getattr(model, "config", None)
    model_type = getattr(cfg, "model_type", None)
    base = _base(model)
    blocks: list[AttentionBlock] = []
    if model_type in _LLAMA_LIKE:
        heads = cfg.num_attention_heads
        kv = getattr(cfg, "num_key_value_heads", None) or heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
        for i, layer in enumerate(base.layers):
            attn = layer.self_attn
            blocks.append(AttentionBlock(i, layer, attn, attn.v_proj, slice(None), attn.o_proj, layer.input_layernorm,
                                         None, heads, kv, head_dim))
    elif model_type == "gpt2":
        heads, d = cfg.n_head, cfg.n_embd
        for i, layer in enumerate(base.h):
            attn = layer.attn
            blocks.append(AttentionBlock(i, layer, attn, attn.c_attn, slice(2 * d, 3 * d), attn.c_proj, layer.ln_1,
                                         None, heads, heads, d // heads))
    elif model_type in _BERT_LIKE:
        heads = cfg.num_attention_heads
        for i, layer in enumerate(base.encoder.layer):
            attn = layer.attention
            blocks.append(AttentionBlock(i, layer, attn.self, attn.self.value, slice(None), attn.output.dense, None,
                                         attn.output.LayerNorm, heads, heads, cfg.hidden_size // heads))
    else:
        raise ValueError(
            f"context mixing does not know the attention blocks of {type(model).__name__} (model_type="
            f"{model_type!r}); supported families: {', '.join(SUPPORTED_FAMILIES)}"
        )
    if getattr(cfg, "is_encoder_decoder", False) or getattr(cfg, "add_cross_attention", False):
        raise ValueError(f"context mixing covers self-attention stacks only; {type(model).__name__} has cross-attention")
    return blocks


def per_head_value_output(block: AttentionBlock, u: Tensor, *, value_bias: bool) -> Tensor:
    """``(u_j W_V^g(h) [+ b_V^g(h)]) W_O^h`` for every query head ``h`` and position ``j``.

    Args:
        u: ``[batch, seq, hidden]`` vectors fed to the value projection.
        value_bias: include the value projection's bias.

    Returns:
        ``[batch, head, seq, hidden]`` (float64 when ``u`` is float64, else the weights' dtype).
    """
    w_v, b_v = block.value_projection()
    w_o, _ = block.output_projection()
    dtype = u.dtype
    v = u @ w_v.to(dtype)  # [batch, seq, kv·hd]
    if value_bias and b_v is not None:
        v = v + b_v.to(dtype)
    b, n, _ = v.shape
    v = v.view(b, n, block.num_kv_heads, block.head_dim).transpose(1, 2)  # [batch, kv, seq, hd]
    group = block.num_heads // block.num_kv_heads
    if group > 1:
        v = v.repeat_interleave(group, dim=1)
    w_o = w_o.to(dtype).reshape(block.num_heads, block.head_dim, -1)  # [head, hd, hidden]
    return torch.einsum("bhnk,hkd->bhnd", v, w_o)


__all__ = ["SUPPORTED_FAMILIES", "AttentionBlock", "attention_blocks", "per_head_value_output"]
