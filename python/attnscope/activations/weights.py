"""``ats.weights(model)``: a model's attention weights per head, read through the family adapter."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ..adapters.sites import attention_weights, base_model, find_family, get_module, num_layers
from ..results.weights import Weights
from .capture import normalize_layers

__all__ = ["weights"]


def _norm_params(module: nn.Module | None) -> tuple[str | None, torch.Tensor | None, torch.Tensor | None, float]:
    if module is None:
        return None, None, None, 1e-6
    name = type(module).__name__.lower()
    weight = getattr(module, "weight", None)
    if isinstance(module, nn.LayerNorm):
        return "layer", weight, getattr(module, "bias", None), float(module.eps)
    eps = float(getattr(module, "variance_epsilon", getattr(module, "eps", 1e-6)))
    if "gemma" in name:
        return "rms1p", weight, None, eps
    if "rmsnorm" in name:
        return "rms", weight, None, eps
    raise ValueError(f"unknown norm module {type(module).__name__}: attnscope reads RMSNorm and LayerNorm")


def _gain(kind: str | None, weight: torch.Tensor | None) -> torch.Tensor | None:
    if weight is None:
        return None
    return 1.0 + weight if kind == "rms1p" else weight


def weights(model: nn.Module, *, layers: Sequence[int] | int | None = None) -> Weights:
    """Per-head attention weights of ``model`` for circuit analysis (QK and OV circuits in factored form, spectra,
    token readouts, RoPE-aware positional scores) and per-layer weight norms.

    Args:
        model: a Hugging Face model of a family with an adapter (Llama/Qwen2/Mistral/Gemma2, GPT-2, GPT-NeoX,
            BERT/RoBERTa/DistilBERT).
        layers: layer indices; None = all.

    Returns:
        Weights: ``.qk(layer, head)``, ``.ov(layer, head)`` (``.matrix`` factored, ``.top_pairs(k, tokenizer)``),
        ``.spectrum``, ``.positional_qk``, ``.matrix_norms``, ``.show()``, ``.plot()``.
    """
    family = find_family(model)
    assert family is not None
    layer_list = normalize_layers(layers, num_layers(model))
    base = base_model(model)
    config = model.config
    per_layer = [attention_weights(model, layer) for layer in layer_list]
    wq, wk, wv, wo = (torch.stack([w[j] for w in per_layer]) for j in range(4))
    with torch.no_grad():
        norms = [_norm_params(get_module(base, family.input_norm.format(i=layer)) if family.input_norm else None)
                 for layer in layer_list]
        kind, eps = norms[0][0], norms[0][3]
        gain = torch.stack([n[1].detach().float() for n in norms]) if norms[0][1] is not None else None
        bias = torch.stack([n[2].detach().float() for n in norms]) if norms[0][2] is not None else None
        embed_module = model.get_input_embeddings()
        embed = embed_module.weight.detach().float()
        if family.name == "gemma2":
            embed = embed * torch.tensor(config.hidden_size ** 0.5, dtype=embed.dtype)
        unembed = None
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        if isinstance(head, nn.Module) and getattr(head, "weight", None) is not None:
            unembed = head.weight.detach().float().T
            final = get_module(base, family.final_norm) if family.final_norm else None
            fkind, fweight, _, _ = _norm_params(final)
            fgain = _gain(fkind, fweight)
            if fgain is not None:
                unembed = fgain.detach().float()[:, None] * unembed
        rotary = getattr(base, "rotary_emb", None) if family.rope else None
        inv_freq = rotary.inv_freq.detach().float().cpu() if rotary is not None else None
        rope_scaling = float(getattr(rotary, "attention_scaling", 1.0) or 1.0) if rotary is not None else 1.0
        attn = get_module(base, family.attention.format(i=layer_list[0]))
        scale = float(getattr(attn, "scaling", 1.0 / math.sqrt(wq.shape[-1])))
        names, rows = None, []
        for layer in layer_list:
            module = get_module(base, family.layers.format(i=layer))
            params = [(n, p) for n, p in module.named_parameters() if p.dim() == 2]
            names = names or [n for n, _ in params]
            rows.append(torch.stack([p.detach().float().norm() for _, p in params]))
    return Weights(W_Q=wq, W_K=wk, W_V=wv, W_O=wo, layers=layer_list, matrix_norms=torch.stack(rows).cpu(),
                   matrix_names=list(names or []), norm_kind=kind, norm_gain=gain, norm_bias=bias, norm_eps=eps,
                   embed=embed, unembed=unembed, inv_freq=inv_freq, rope_scaling=rope_scaling, scale=scale,
                   model_type=family.name)
