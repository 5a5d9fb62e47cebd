"""The attention function attnscope installs through transformers' AttentionInterface.

When a recording call needs no autograd graph (inference: ``torch.no_grad()`` or nothing requires grad), one op
call computes the probabilities, their reductions and the layer output P·V from the same probabilities, so
``q @ k^T`` is computed once. Otherwise it computes the layer output the way the model did (SDPA by default) and the
requested attention probabilities with the C++ op; where SDPA would not compute what eager computes (soft-capping,
learned sinks) or where every head is captured unreduced anyway, the output is P·V from the op's probabilities.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch
from torch import Tensor, nn

from .. import ops
from ..ops import AttentionSpec


@dataclass
class CaptureOptions:
    heads: list[int] | None = None
    reduce: str | None = None
    topk: int = 0
    entropy: bool = False
    grad: bool = False
    query_chunk: int = 0
    # False: nothing is kept for cap.results (only consumers see the calls); the layer output is the model's own.
    record: bool = True

    @property
    def keep_weights(self) -> bool:
        # Top-k or entropy alone replace the weights unless a head reduction was asked for too.
        return self.reduce is not None or not (self.topk or self.entropy)

    @property
    def wants_full(self) -> bool:
        return self.heads is None and self.reduce is None and self.keep_weights


@dataclass
class AttentionCall:
    """What one attention call produced for one layer (one forward or one generation step)."""

    weights: Tensor | None  # [batch, heads_sel, q, k] or [batch, q, k]
    topk_values: Tensor | None
    topk_indices: Tensor | None  # key columns of this call
    entropy: Tensor | None
    q_len: int
    k_len: int
    grad: Tensor | None = None  # filled by the backward hook


def eager_function_of(module: nn.Module) -> Callable:
    """The eager attention function of the module's own modeling file (what "eager" means for it)."""
    fn = getattr(sys.modules.get(type(module).__module__), "eager_attention_forward", None)
    if fn is None:
        from transformers.models.llama.modeling_llama import eager_attention_forward as fn
    return fn


def _probs_times_values(probs: Tensor, value: Tensor) -> Tensor:
    """P·V per head with grouped-query mapping; returns [batch, q, heads, head_dim] as attention functions do."""
    batch, heads, q_len, k_len = probs.shape
    kv_heads = value.shape[1]
    grouped = probs.to(value.dtype).view(batch, kv_heads, heads // kv_heads, q_len, k_len)
    out = grouped @ value.unsqueeze(2)
    return out.reshape(batch, heads, q_len, value.shape[-1]).transpose(1, 2).contiguous()


def _grad_wrt_probs(grad_out: Tensor, value: Tensor) -> Tensor:
    """dF/dP = dO·Vᵀ per head, from the gradient of the [batch, q, heads, head_dim] output."""
    d_out = grad_out.transpose(1, 2)  # [batch, heads, q, head_dim]
    batch, heads, q_len, head_dim = d_out.shape
    kv_heads = value.shape[1]
    grouped = d_out.reshape(batch, kv_heads, heads // kv_heads, q_len, head_dim)
    d_probs = grouped @ value.unsqueeze(2).transpose(-1, -2)
    return d_probs.reshape(batch, heads, q_len, value.shape[2])


def _reduce_heads(t: Tensor, opts: CaptureOptions) -> Tensor:
    if opts.heads is not None:
        t = t[:, opts.heads]
    if opts.reduce == "mean":
        return t.mean(1)
    if opts.reduce == "sum":
        return t.sum(1)
    if opts.reduce == "max":
        return t.amax(1)
    return t


# Keyword arguments of attention functions: those attend() honours, and those that do not change the attention
# (flags and tensors the layers pass through for other functions). Any other argument with a value is refused with
# an error naming it: a bias or mask variant that the capture dropped would silently change the weights and the
# model's output.
_HONOURED = frozenset({"scaling", "softcap", "s_aux", "sliding_window", "is_causal", "dropout", "position_bias"})
_INERT = frozenset({
    "position_ids", "cache_position", "use_cache", "output_attentions", "output_hidden_states", "return_dict",
    "output_router_logits", "encoder_hidden_states", "token_type_ids", "layer_idx", "past_key_values", "cache",
})


def check_arguments(module: nn.Module, kwargs: dict) -> None:
    """Refuse an attention call whose arguments the capture would not honour (naming the argument)."""
    for name, value in kwargs.items():
        if name in _HONOURED or name in _INERT or value is None or value is False:
            continue
        raise ValueError(
            f"{type(module).__name__} passes {name}={_describe(value)} to its attention function, which attnscope's "
            "capture does not honour (it honours scaling, softcap, s_aux/sinks, sliding_window, is_causal, dropout "
            "and position_bias); capturing would change the weights and the model's output, so it is "
            "refused. Capture with ats.capture_attention on a model of another family, or file an issue with the "
            "model's name"
        )


def active_dropout(module: nn.Module, kwargs: dict, grad: bool) -> float:
    """The attention dropout this call applies (0 in eval mode). When it is not 0 the layer output stays the
    model's own (dropout included) and a warning names the value: the captured weights are the probabilities
    before dropout. With ``grad=True`` it is refused: dF/dP would be taken through the dropped weights."""
    dropout = float(kwargs.get("dropout") or 0.0)
    if dropout <= 0 or not module.training:
        return 0.0
    name = type(module).__name__
    if grad:
        raise ValueError(
            f"{name} is in training mode with attention dropout {dropout:g}: grad=True would record dF/dP through "
            "randomly dropped weights; call model.eval() before capturing with grad=True"
        )
    warnings.warn(
        f"{name} is in training mode with attention dropout {dropout:g}: the layer outputs keep the model's dropout "
        "(its forward is unchanged), but the captured weights are the probabilities before dropout, not the ones "
        "that multiplied the values; call model.eval() to capture the weights the forward used",
        RuntimeWarning, stacklevel=3,
    )
    return dropout


def _describe(value: object) -> str:
    return f"Tensor{tuple(value.shape)}" if isinstance(value, Tensor) else repr(value)


def _with_bias(mask: Tensor | None, bias: Tensor, k_len: int) -> Tensor:
    """The additive float mask ``bias + mask`` (T5's relative position bias), as eager attention adds it: a boolean
    mask becomes the dtype's minimum where False, as transformers' SDPA path does."""
    bias = bias[..., :k_len]
    if mask is None:
        return bias
    if mask.dtype == torch.bool:
        return torch.where(mask, bias, torch.finfo(bias.dtype).min)
    return bias + mask


def call_spec(module: nn.Module, query: Tensor, key: Tensor, attention_mask: Tensor | None, kwargs: dict,
              query_chunk: int) -> AttentionSpec:
    """The attention arguments of one call as the ops take them (from the module and the interface's kwargs)."""
    k_len = key.shape[2]
    scaling = kwargs.get("scaling")
    scaling = query.shape[-1] ** -0.5 if scaling is None else float(scaling)
    sinks = kwargs.get("s_aux")
    if sinks is None and isinstance(getattr(module, "sinks", None), Tensor):
        sinks = module.sinks
    mask = attention_mask
    is_causal, window = False, 0
    if mask is not None and mask.dim() == 4 and mask.shape[-1] > k_len:
        mask = mask[..., :k_len]  # static caches build masks over their whole length
    if mask is None or mask.dim() == 2:
        # transformers' causal fast path passes no mask: causality and the window are applied by the op.
        is_causal = bool(kwargs.get("is_causal", getattr(module, "is_causal", False)))
        window = int(kwargs.get("sliding_window") or 0) if is_causal else 0
        if mask is not None:  # a [batch, key] padding mask (flash-attention style)
            mask = mask.bool()[:, None, None, :]
    bias = kwargs.get("position_bias")
    if bias is not None:  # T5's relative position bias: part of the scores, as eager adds it
        mask = _with_bias(mask, bias, k_len)
    return AttentionSpec(mask=mask, scale=scaling, is_causal=is_causal, window=window,
                         softcap=float(kwargs.get("softcap") or 0.0), sinks=sinks, query_chunk=query_chunk)


class Attended(NamedTuple):
    """What :func:`attend` returns for one attention call."""

    output: Tensor  # [batch, q, heads, head_dim], as attention functions return it
    call: AttentionCall | None  # what is recorded for cap.results; None when the scope records nothing
    spec: AttentionSpec
    probs: Tensor | None  # detached [batch, heads, q, k] when asked for (for consumers that need them)


def _needs_graph(query: Tensor, key: Tensor, value: Tensor, spec: AttentionSpec) -> bool:
    """Whether the layer output must carry an autograd graph (to the inputs, a learned bias or the sinks)."""
    tensors = (query, key, value, spec.mask, spec.sinks)
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _attend_in_one_pass(opts: CaptureOptions, query: Tensor, key: Tensor, value: Tensor, spec: AttentionSpec,
                        want_probs: bool) -> Attended:
    """Record without autograd: one op call gives the captured weights and the layer output P·V of every head from
    the same probabilities (eager attention's semantics, soft-capping and sinks included)."""
    r = ops.attention_probs_reduced(
        query, key, spec=spec, heads=opts.heads, reduce=opts.reduce, keep_weights=opts.keep_weights,
        topk=opts.topk, entropy=opts.entropy, value=value,
    )
    probs = None
    if want_probs:  # the weights are the full probabilities when every head is kept unreduced
        probs = r.weights if opts.wants_full else ops.attention_probs(query, key, spec=spec)
    call = AttentionCall(
        r.weights if opts.keep_weights else None,
        r.topk_values if opts.topk else None,
        r.topk_indices if opts.topk else None,
        r.entropy if opts.entropy else None,
        query.shape[2],
        key.shape[2],
    )
    return Attended(r.output.to(value.dtype), call, spec, probs)


def attend(
    opts: CaptureOptions,
    original: Callable,
    original_is_eager: bool,
    module: nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    kwargs: dict,
    *,
    want_probs: bool = False,
) -> Attended:
    """Run one attention call: the layer output, the captured probabilities and the call's attention spec."""
    check_arguments(module, kwargs)
    heads, q_len, k_len = query.shape[1], query.shape[2], key.shape[2]
    if opts.record and opts.heads is not None and max(opts.heads) >= heads:
        raise ValueError(f"head {max(opts.heads)} out of range: the model has {heads} heads (0..{heads - 1})")
    spec = call_spec(module, query, key, attention_mask, kwargs, opts.query_chunk)
    dropout = active_dropout(module, kwargs, opts.grad and opts.record)
    if opts.record and not dropout and not _needs_graph(query, key, value, spec):
        return _attend_in_one_pass(opts, query, key, value, spec, want_probs)
    exotic = (spec.softcap > 0 or spec.sinks is not None) and not original_is_eager
    probs = None
    # With an additive bias the output stays the model's own: its gradient reaches the bias (a learned parameter),
    # which the op's probabilities do not differentiate. With dropout in training mode, it applies the dropout.
    pv = (exotic or (opts.wants_full and kwargs.get("position_bias") is None)) and not dropout
    if not opts.record or not pv:
        # SDPA would not compute what eager does with soft-capping or sinks: the module's eager function then.
        fn = eager_function_of(module) if exotic else original
        output, _ = fn(module, query, key, value, attention_mask, **kwargs)
        if want_probs:
            with torch.no_grad():
                probs = ops.attention_probs(query.detach(), key.detach(), spec=spec.detached())
        if not opts.record:
            return Attended(output, None, spec, probs)
        with torch.no_grad():
            r = ops.attention_probs_reduced(
                query.detach(), key.detach(), spec=spec.detached(), heads=opts.heads, reduce=opts.reduce,
                keep_weights=opts.keep_weights, topk=opts.topk, entropy=opts.entropy,
            )
        weights = r.weights if opts.keep_weights else None
        topk_values, topk_indices = (r.topk_values, r.topk_indices) if opts.topk else (None, None)
        entropy = r.entropy if opts.entropy else None
    else:
        full = ops.attention_probs(query, key, spec=spec)
        output = _probs_times_values(full, value)
        with torch.no_grad():
            p = full.detach()
            probs = p if want_probs else None
            weights = _reduce_heads(p, opts) if opts.keep_weights else None
            sel = p if opts.heads is None else p[:, opts.heads]
            topk_values = topk_indices = entropy = None
            if opts.topk:
                topk_values, topk_indices = sel.topk(opts.topk, dim=-1)
            if opts.entropy:
                entropy = -torch.where(sel > 0, sel * sel.log(), torch.zeros_like(sel)).sum(-1)
    call = AttentionCall(weights, topk_values, topk_indices, entropy, q_len, k_len)
    if opts.grad and output.requires_grad:
        v = value.detach()

        def hook(grad_out: Tensor) -> None:
            with torch.no_grad():
                call.grad = _reduce_heads(_grad_wrt_probs(grad_out, v).float(), opts)

        output.register_hook(hook)
    return Attended(output, call, spec, probs)
