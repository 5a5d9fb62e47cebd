"""Where a model family keeps its readout and its residual stream: blocks, final norm, unembedding, final softcap,
and (for direct logit attribution) each block's attention, output projection, MLP and sandwich norms.

Families: Llama, Qwen2, Mistral, Gemma/Gemma2 (post-attention and post-feed-forward norms, final logit softcap),
GPT-2 (tied unembedding, Conv1D output projection), GPT-NeoX (parallel attention), BERT-style masked LMs (the MLM
head's transform is the "final norm"; post-LN, so no direct logit attribution).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

__all__ = ["BlockParts", "FrozenNorm", "Readout", "block_parts", "freeze_norm", "find_readout"]


@dataclass
class Readout:
    """The path from a residual-stream state to logits: ``logits = softcap(norm(x) @ weight.T + bias)``."""

    model_type: str
    blocks: list[nn.Module]  # the transformer blocks in order; block i's output is the residual after layer i
    norm: Callable[[Tensor], Tensor]  # the final norm (BERT MLM: the prediction head's transform)
    norm_module: nn.Module | None
    weight: Tensor  # [vocab, d]
    bias: Tensor | None  # [vocab]
    softcap: float  # 0 = none
    post_ln: bool  # post-LN encoder (BERT): the residual stream is normalised inside every block
    parallel_attention: bool = False


@dataclass
class BlockParts:
    """What direct logit attribution needs of one block."""

    attention: nn.Module  # calls the attention function (per-head outputs [batch, seq, heads, head_dim])
    o_proj: nn.Module  # Linear [d, heads*head_dim] or GPT-2 Conv1D [heads*head_dim, d]
    mlp: nn.Module
    post_attention_norm: nn.Module | None  # Gemma2: normalises the attention output before the residual add
    post_mlp_norm: nn.Module | None
    num_heads: int
    head_dim: int

    def head_weights(self) -> Tensor:
        """``[heads, head_dim, d]``: head h's slice of the output projection (its output is ``z_h @ W[h]``)."""
        w = self.o_proj.weight
        w = w if type(self.o_proj).__name__ == "Conv1D" else w.t()  # -> [heads*head_dim, d]
        return w.reshape(self.num_heads, self.head_dim, w.shape[-1])

    @property
    def o_bias(self) -> Tensor | None:
        return getattr(self.o_proj, "bias", None)


def _get(root: object, path: str) -> object | None:
    for part in path.split("."):
        root = getattr(root, part, None)
        if root is None:
            return None
    return root


_BLOCK_PATHS = ("model.layers", "transformer.h", "gpt_neox.layers", "bert.encoder.layer", "roberta.encoder.layer",
                "model.decoder.layers", "layers", "h", "encoder.layer")
_NORM_PATHS = ("model.norm", "transformer.ln_f", "gpt_neox.final_layer_norm", "model.final_layernorm",
               "model.decoder.final_layer_norm", "norm", "ln_f", "final_layer_norm")
_MLM_TRANSFORM_PATHS = ("cls.predictions.transform", "lm_head.dense")


def _mlm_readout(model: nn.Module) -> tuple[Callable[[Tensor], Tensor], nn.Module] | None:
    """BERT-style MLM heads: ``cls.predictions.transform`` (dense, activation, LayerNorm); RoBERTa: ``lm_head``."""
    transform = _get(model, "cls.predictions.transform")
    if isinstance(transform, nn.Module):
        return transform, transform
    head = _get(model, "lm_head")
    if isinstance(head, nn.Module) and hasattr(head, "dense") and hasattr(head, "layer_norm"):
        def roberta_transform(x: Tensor) -> Tensor:
            from transformers.activations import gelu

            return head.layer_norm(gelu(head.dense(x)))

        return roberta_transform, head
    return None


def find_readout(model: nn.Module) -> Readout:
    """The readout of ``model``; raises ValueError naming what is missing (no LM head, no blocks)."""
    config = getattr(model, "config", None)
    model_type = str(getattr(config, "model_type", type(model).__name__))
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if not isinstance(head, nn.Module) or getattr(head, "weight", None) is None:
        raise ValueError(
            f"{type(model).__name__} has no language-model head (get_output_embeddings() is "
            f"{type(head).__name__ if head is not None else None}): the logit lens and direct logit attribution need "
            "the unembedding; load the model with AutoModelForCausalLM or AutoModelForMaskedLM, not AutoModel"
        )
    blocks = None
    for path in _BLOCK_PATHS:
        found = _get(model, path)
        if isinstance(found, nn.ModuleList) and len(found) > 0:
            blocks = list(found)
            break
    if blocks is None:
        raise ValueError(f"could not find the transformer blocks of {type(model).__name__} (model_type={model_type!r})")
    mlm = _mlm_readout(model)
    # BERT-style blocks end in output.LayerNorm: the residual stream is normalised inside every block.
    post_ln = hasattr(getattr(blocks[0], "output", None), "LayerNorm")
    if mlm is not None:
        norm, norm_module = mlm
    else:
        norm_module = next((m for m in (_get(model, p) for p in _NORM_PATHS) if isinstance(m, nn.Module)), None)
        if norm_module is None:
            raise ValueError(f"could not find the final norm of {type(model).__name__} (model_type={model_type!r})")
        norm = norm_module
    softcap = float(getattr(config, "final_logit_softcapping", None) or 0.0)
    parallel = bool(getattr(config, "use_parallel_residual", False) or getattr(config, "parallel_attn", False))
    return Readout(model_type, blocks, norm, norm_module, head.weight, getattr(head, "bias", None), softcap, post_ln,
                   parallel)


def block_parts(model: nn.Module, readout: Readout) -> list[BlockParts]:
    """Attention, output projection, MLP and sandwich norms of every block (decoder families)."""
    config = model.config
    parts = []
    for i, block in enumerate(readout.blocks):
        attn = next((m for m in (getattr(block, n, None) for n in ("self_attn", "attn", "attention"))
                     if isinstance(m, nn.Module)), None)
        o_proj = None if attn is None else next(
            (m for m in (getattr(attn, n, None) for n in ("o_proj", "c_proj", "dense", "out_proj"))
             if isinstance(m, nn.Module)), None)
        mlp = next((m for m in (getattr(block, n, None) for n in ("mlp", "feed_forward")) if isinstance(m, nn.Module)),
                   None)
        if attn is None or o_proj is None or mlp is None:
            raise ValueError(f"block {i} of {type(model).__name__} has no recognisable attention/output projection/MLP "
                             f"(model_type={readout.model_type!r}); direct logit attribution does not support it yet")
        sandwich = hasattr(block, "pre_feedforward_layernorm") and hasattr(block, "post_feedforward_layernorm")
        heads = int(getattr(config, "num_attention_heads", None) or getattr(config, "n_head"))
        in_features = o_proj.weight.shape[0] if type(o_proj).__name__ == "Conv1D" else o_proj.weight.shape[1]
        parts.append(BlockParts(attn, o_proj, mlp, block.post_attention_layernorm if sandwich else None,
                                block.post_feedforward_layernorm if sandwich else None, heads, in_features // heads))
    return parts


@dataclass
class FrozenNorm:
    """A norm with its scale frozen at the value it had for one input: ``norm(x) = center(x) * mult + beta``.

    ``mult`` ``[..., d]`` is the norm's gain times ``1/rms`` (or ``1/std``); ``center`` subtracts the mean (LayerNorm).
    """

    mult: Tensor
    beta: Tensor | None
    center: bool

    def apply(self, c: Tensor) -> Tensor:
        """The frozen (linear) norm applied to a component ``c`` ``[..., d]``, without ``beta``."""
        if self.center:
            c = c - c.mean(-1, keepdim=True)
        return c * self.mult

    def pullback(self, u: Tensor) -> Tensor:
        """``g`` with ``g . c == u . apply(c)`` for every ``c`` (the adjoint; centring is symmetric)."""
        g = u * self.mult
        return g - g.mean(-1, keepdim=True) if self.center else g


def freeze_norm(module: nn.Module, x: Tensor) -> FrozenNorm:
    """Freeze ``module``'s scale at input ``x`` ``[..., d]``; checks the result against ``module(x)``.

    Supports ``nn.LayerNorm`` and RMS norms (Llama-style ``w * x / rms``; Gemma-style ``(1 + w) * x / rms``).
    """
    with torch.no_grad():
        return _freeze_norm(module, x.detach())


def _freeze_norm(module: nn.Module, x: Tensor) -> FrozenNorm:
    xf = x.double()
    name = type(module).__name__
    if isinstance(module, nn.LayerNorm):
        var = xf.var(-1, unbiased=False, keepdim=True)
        gain = module.weight.double() if module.weight is not None else torch.ones_like(xf[..., 0:1])
        frozen = FrozenNorm(gain * torch.rsqrt(var + module.eps),
                            None if module.bias is None else module.bias.double(), True)
    elif "RMSNorm" in name and getattr(module, "weight", None) is not None:
        eps = getattr(module, "variance_epsilon", None) or getattr(module, "eps", None) or 1e-6
        w = module.weight.double()
        gain = 1.0 + w if name.startswith("Gemma") else w
        frozen = FrozenNorm(gain * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps), None, False)
    else:
        raise ValueError(f"direct logit attribution cannot freeze a {name} (supported: LayerNorm and RMS norms)")
    actual = module(x).double()
    mine = frozen.apply(xf) + (frozen.beta if frozen.beta is not None else 0.0)
    tol = 1e-3 * float(actual.abs().max()) + 1e-5
    if float((mine - actual).abs().max()) > tol:
        raise ValueError(f"{name} does not compute what its frozen form assumes (max diff "
                         f"{float((mine - actual).abs().max()):.3g}); direct logit attribution does not support it")
    return frozen
