"""Context mixing beyond raw attention weights: attention-norm, ALTI and value zeroing.

- ``"norm"`` (Kobayashi et al., 2020): ``‖Σ_h α^h_ij f^h(u_j)‖₂`` with ``f^h(u) = (u W_V^h + b_V^h) W_O^h`` and
  ``u`` the attention module's input (after the pre-norm of pre-LN models). Raw norms (rows do not sum to 1);
  ``per_head=True`` keeps the head axis, ``α^h_ij ‖f^h(u_j)‖₂``.
- ``"alti"`` (Ferrando et al., 2022): the attention block's output ``x̃_i`` is decomposed exactly into one vector per
  input token, ``T̃_i(x_j)`` (residual included; the layer norm's linear part with the statistics of the actual
  forward), plus a bias that belongs to no token. ``c_ij = max(0, ‖x̃_i‖₁ - ‖x̃_i - T̃_i(x_j)‖₁)``, rows normalised
  to sum to 1. Computed in chunks of query rows: the ``[chunk, seq, hidden]`` vectors of one chunk at a time.
- ``"value_zeroing"`` (Mohebbi et al., 2023): zero the value vector of token ``j`` (all heads) in layer ``l``,
  re-run layer ``l`` alone from its original input, score = cosine distance of token ``i``'s layer output to the
  original; rows normalised to sum to 1 (``normalize=False`` keeps the raw distances).

Attention probabilities come from the capture engine (the model keeps its attention implementation, SDPA by
default); everything else from forward hooks on the model's own modules, removed on exit, also on exceptions.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..adapters.blocks import AttentionBlock, attention_blocks, per_head_value_output
from ..adapters.sites import layer_indices
from ..results import AttentionResult
from ..model_lock import holds_model

METHODS: tuple[str, ...] = ("norm", "alti", "value_zeroing")
_CHUNK_BYTES = 256 * 2**20  # the [batch, chunk, seq, hidden] float64 vectors of one ALTI / norm chunk


def _check_method(method: Any) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown context-mixing method {method!r}: use one of {', '.join(map(repr, METHODS))}")
    return method


def _layers_checked(layers: Sequence[int] | int | None, n_layers: int) -> list[int]:
    """Layer indices, sorted and unique; negative ones count from the end; None = all; an empty list is refused."""
    if layers is not None and not isinstance(layers, int):
        layers = list(layers)
        if not layers:
            raise ValueError("layers must name at least one layer, got an empty list")
    picked = layer_indices(layers, n_layers)  # the capture engine's check: types, range, negative indices
    return list(range(n_layers)) if picked is None else picked


def _first(x: Any) -> Tensor:
    return x[0] if isinstance(x, (tuple, list)) else x


def _hidden_arg(args: tuple, kwargs: dict) -> Tensor:
    return args[0] if args else kwargs["hidden_states"]


@contextmanager
def _hooks() -> Iterator[list]:
    """A list to append hook handles to; every handle is removed on exit, also on exceptions."""
    handles: list = []
    try:
        yield handles
    finally:
        for handle in handles:
            handle.remove()


def _forward_kwargs(model: nn.Module, kwargs: dict[str, Tensor]) -> dict[str, Any]:
    """The forward's keyword arguments, without a KV cache where the model has one."""
    if "use_cache" in inspect.signature(model.forward).parameters:
        return {**kwargs, "use_cache": False}
    return dict(kwargs)


# --- norm and ALTI -----------------------------------------------------------------------------------------------
def _decomposed(model: nn.Module, blocks: list[AttentionBlock], layers: list[int], kwargs: dict, method: str,
                per_head: bool, query_chunk: int | None) -> Tensor:
    from ..capturing import capture

    seen: dict[int, dict[str, Tensor]] = {layer: {} for layer in layers}

    def keep(layer: int, name: str, pre: bool):
        if pre:
            def hook(module, args, kw):
                seen[layer][name] = _hidden_arg(args, kw).detach()
        else:
            def hook(module, args, out):
                seen[layer][name] = _first(out).detach()
        return hook

    cap = capture(model, layers=layers)
    with _hooks() as handles:
        for layer in layers:
            block = blocks[layer]
            handles.append(block.layer.register_forward_pre_hook(keep(layer, "x", True), with_kwargs=True))
            handles.append(block.attention.register_forward_pre_hook(keep(layer, "u", True), with_kwargs=True))
            handles.append(block.out_module.register_forward_hook(keep(layer, "o", False)))
            if block.post_norm is not None:
                handles.append(block.post_norm.register_forward_hook(keep(layer, "out", False)))
        with cap:
            model(**_forward_kwargs(model, kwargs))
    if cap.calls == 0:
        raise ValueError(f"{type(model).__name__}'s attention does not run through transformers' AttentionInterface, "
                         "so its attention probabilities cannot be captured exactly; context mixing needs them")
    probs = cap.result.weights  # [layer, batch, head, query, key]
    out = []
    for li, layer in enumerate(layers):
        parts = seen[layer]
        if method == "norm":
            out.append(_norm_layer(blocks[layer], probs[li], parts, per_head, query_chunk))
        else:
            out.append(_alti_layer(blocks[layer], probs[li], parts, query_chunk))
    return torch.stack(out)


def _chunk_rows(query_chunk: int | None, batch: int, seq: int, hidden: int) -> int:
    if query_chunk is not None:
        return query_chunk
    return max(1, min(seq, _CHUNK_BYTES // max(1, batch * seq * hidden * 8)))


def _mixed_rows(a: Tensor, v: Tensor, i0: int, i1: int) -> Tensor:
    """``Σ_h a[b, h, i, k] v[b, h, k]`` for query rows ``i0:i1``, laid out ``[batch, key, row, hidden]``: one batched
    matmul over (batch, key), and a fresh tensor the caller may overwrite (in-place work avoids allocating more
    chunk-sized temporaries, which dominated the time)."""
    return torch.matmul(a[:, :, i0:i1].permute(0, 3, 2, 1).contiguous(), v.permute(0, 2, 1, 3).contiguous())


def _norm_layer(block: AttentionBlock, probs: Tensor, parts: dict[str, Tensor], per_head: bool,
                query_chunk: int | None) -> Tensor:
    u = parts["u"].double()
    a = probs.to(u.device).double()  # [batch, head, query, key]
    f = per_head_value_output(block, u, value_bias=True)  # [batch, head, key, hidden]
    if per_head:
        return a * torch.linalg.vector_norm(f, dim=-1)[:, :, None, :]
    b, n, d = u.shape
    step = _chunk_rows(query_chunk, b, n, d)
    rows = [torch.linalg.vector_norm(_mixed_rows(a, f, i0, min(n, i0 + step)), dim=-1).transpose(1, 2)
            for i0 in range(0, n, step)]
    return torch.cat(rows, dim=1)


def _alti_layer(block: AttentionBlock, probs: Tensor, parts: dict[str, Tensor], query_chunk: int | None) -> Tensor:
    x, u, o = parts["x"].double(), parts["u"].double(), parts["o"].double()
    a = probs.to(x.device).double()
    beta = block.pre_norm_bias()
    lin = u - beta.double() if beta is not None else u  # the pre-norm's linear part of each x_j
    v = per_head_value_output(block, lin, value_bias=False)  # [batch, head, key, hidden]
    y = x + o  # residual + attention output (biases included): the pre-LN block output, the post-LN norm's input
    own = x  # each token's own (residual) vector
    target = y
    if block.post_norm is not None:
        # The post-norm's linear part is gamma * (t - mean(t)) / sigma(y_i). Centring and gamma are linear, so they are
        # applied to the values and residual vectors once; the 1/sigma(y_i) of row i is applied to the target instead
        # (multiplying the target by sigma(y_i) scales every c_ij of row i by it, which the normalisation removes).
        norm = block.post_norm
        gamma = norm.weight.double() if norm.weight is not None else 1.0
        v = (v - v.mean(dim=-1, keepdim=True)) * gamma
        own = (x - x.mean(dim=-1, keepdim=True)) * gamma
        sigma = (y.var(dim=-1, unbiased=False, keepdim=True) + norm.eps).sqrt()  # [batch, query, 1]
        target = parts["out"].double() * sigma
    b, n, d = x.shape
    step = _chunk_rows(query_chunk, b, n, d)
    rows = []
    for i0 in range(0, n, step):
        i1 = min(n, i0 + step)
        t = _mixed_rows(a, v, i0, i1)  # [batch, key, chunk, hidden]
        idx = torch.arange(i0, i1, device=t.device)
        t[:, idx, idx - i0] += own[:, i0:i1]  # the residual: token i's own vector
        out = target[:, None, i0:i1]  # [batch, 1, chunk, hidden]
        dist = t.sub_(out).abs_().sum(-1)  # ||x~_i - T~_i(x_j)||_1, [batch, key, chunk]
        rows.append((out.abs().sum(-1) - dist).clamp_min_(0).transpose(1, 2))
    c = torch.cat(rows, dim=1)
    return c / c.sum(-1, keepdim=True).clamp_min(torch.finfo(c.dtype).tiny)


# --- value zeroing -----------------------------------------------------------------------------------------------
def _select(obj: Any, batch: int, row: int, copies: int) -> Any:
    """``obj`` (args/kwargs of a layer call) with every batch-major tensor cut to example ``row``, ``copies`` times."""
    if isinstance(obj, Tensor):
        if obj.dim() >= 2 and obj.shape[0] == batch:
            return obj[row:row + 1].expand(copies, *obj.shape[1:]).contiguous()
        return obj
    if isinstance(obj, tuple):
        return tuple(_select(v, batch, row, copies) for v in obj)
    if isinstance(obj, list):
        return [_select(v, batch, row, copies) for v in obj]
    if isinstance(obj, dict):
        return {k: _select(v, batch, row, copies) for k, v in obj.items()}
    return obj


def _value_zeroing(model: nn.Module, blocks: list[AttentionBlock], layers: list[int], kwargs: dict,
                   mask: Tensor, chunk: int | None) -> Tensor:
    calls: dict[int, tuple] = {}
    outputs: dict[int, Tensor] = {}

    def keep_call(layer: int):
        def hook(module, args, kw):
            calls[layer] = (args, kw)
        return hook

    def keep_out(layer: int):
        def hook(module, args, out):
            outputs[layer] = _first(out).detach()
        return hook

    with _hooks() as handles:
        for layer in layers:
            handles.append(blocks[layer].layer.register_forward_pre_hook(keep_call(layer), with_kwargs=True))
            handles.append(blocks[layer].layer.register_forward_hook(keep_out(layer)))
        model(**_forward_kwargs(model, kwargs))

    batch, n = mask.shape
    step = chunk or max(1, min(n, _CHUNK_BYTES // max(1, 8 * n * outputs[layers[0]].shape[-1] * 4)))
    result = torch.zeros(len(layers), batch, n, n, dtype=torch.float64, device=mask.device)
    zeroed: list[Tensor] = []  # the positions whose value vectors the running call zeroes, one per copy

    def zero_values(features: slice):
        def hook(module, args, out):
            rows = torch.arange(out.shape[0], device=out.device)
            out = out.clone()
            out[rows, zeroed[0], features] = 0
            return out
        return hook

    for li, layer in enumerate(layers):
        block = blocks[layer]
        args, kw = calls[layer]
        with _hooks() as handles:
            handles.append(block.value_module.register_forward_hook(zero_values(block.value_features)))
            for b in range(batch):
                valid = mask[b].nonzero().flatten()
                original = outputs[layer][b].double()  # [seq, hidden]
                for j0 in range(0, valid.numel(), step):
                    js = valid[j0:j0 + step]
                    zeroed[:] = [js]
                    new = _first(block.layer(*_select(args, batch, b, js.numel()),
                                             **_select(kw, batch, b, js.numel()))).double()  # [copies, seq, hidden]
                    dist = 1 - torch.nn.functional.cosine_similarity(new, original[None], dim=-1)  # [copies, seq]
                    result[li, b, :, js] = dist.T.clamp_min(0)
    return result


# --- the public function -----------------------------------------------------------------------------------------
@holds_model
def context_mixing(
    model: nn.Module,
    inputs: Any,
    method: str = "alti",
    *,
    tokenizer: Any = None,
    layers: Sequence[int] | int | None = None,
    per_head: bool = False,
    normalize: bool | None = None,
    query_chunk: int | None = None,
) -> AttentionResult:
    """How much each token's representation mixes into each other token's, per layer.

    Args:
        model: a Hugging Face model of a supported family (Llama, Mistral, Qwen2/3, GPT-2, BERT, RoBERTa,
            ELECTRA); its attention implementation is kept (SDPA by default). Must be in eval mode.
        inputs: a tokenizer's output or an ``input_ids`` tensor ``[batch, seq]``.
        method: ``"norm"`` (Kobayashi et al. 2020), ``"alti"`` (Ferrando et al. 2022) or ``"value_zeroing"``
            (Mohebbi et al. 2023); see the module docstring for the exact definitions.
        tokenizer: fills ``.tokens``.
        layers: layer indices (negative from the end); None = all.
        per_head: ``method="norm"`` only: keep the head axis (``α^h_ij ‖f^h(u_j)‖``).
        normalize: divide each row by its sum; default False for ``"norm"``, True for ``"alti"`` (part of its
            definition, always on) and ``"value_zeroing"``.
        query_chunk: query rows per chunk (ALTI, norm) or zeroed positions per batched layer call (value zeroing);
            None = sized to about 256 MiB.

    Returns:
        AttentionResult with ``weights`` ``[layer, batch, query, key]`` (``[layer, batch, head, query, key]`` for
        ``per_head=True``), float64; ``method`` set, ``residual_included`` True for ALTI and value zeroing (their
        scores already account for the residual stream, so :func:`attnscope.rollout` chains them as they are).
        Padding rows and columns are 0.
    """
    from ..inputs import model_device, model_inputs, token_strings

    method = _check_method(method)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a Hugging Face transformer (torch.nn.Module), got {type(model).__name__}")
    if per_head and method != "norm":
        raise ValueError(f"per_head=True is defined for method='norm' only (ALTI and value zeroing score whole "
                         f"layers), got method={method!r}")
    if normalize is False and method == "alti":
        raise ValueError("ALTI's contributions are normalised by definition; normalize=False applies to 'norm' and "
                         "'value_zeroing'")
    if query_chunk is not None and (not isinstance(query_chunk, int) or isinstance(query_chunk, bool)
                                    or query_chunk < 1):
        raise ValueError(f"query_chunk must be a positive integer or None, got {query_chunk!r}")
    if model.training:
        raise ValueError("model is in training mode (dropout would make the scores random); call model.eval() first")
    blocks = attention_blocks(model)
    picked = _layers_checked(layers, len(blocks))
    device = model_device(model)
    prepared = model_inputs(inputs, tokenizer=tokenizer, model=model, device=device)
    kwargs = prepared.forward_kwargs(torch.arange(prepared.batch, device=device))
    mask = prepared.attention_mask != 0
    with torch.no_grad():
        if method == "value_zeroing":
            weights = _value_zeroing(model, blocks, picked, kwargs, mask, query_chunk)
        else:
            weights = _decomposed(model, blocks, picked, kwargs, method, per_head, query_chunk)
    keep = (mask[:, :, None] & mask[:, None, :]).to(weights.dtype)  # [batch, query, key]
    weights = weights * (keep[None, :, None] if weights.dim() == 5 else keep[None])
    if normalize if normalize is not None else method != "norm":
        weights = weights / weights.sum(-1, keepdim=True).clamp_min(torch.finfo(weights.dtype).tiny)
    tokens = None
    if tokenizer is not None:
        tokens = [token_strings(tokenizer, row.tolist()) for row in prepared.input_ids]
    return AttentionResult(weights=weights, layers=picked, attention_mask=prepared.attention_mask,
                           input_ids=prepared.input_ids, tokens=tokens, method=method,
                           residual_included=method != "norm")


__all__ = ["METHODS", "context_mixing"]
