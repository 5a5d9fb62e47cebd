"""The logit lens: every layer's residual stream read through the model's own final norm and unembedding.

One forward of the model body (no LM head over the sequence) with a hook on every block writes the residual stream
after each wanted layer, through the final norm and at the wanted positions, into one stack ``[layers, rows, d]``;
the C++ op ``vocab_projection`` streams the unembedding over vocabulary chunks with a running top-k and log-sum-exp,
so ``[layers, positions, vocab]`` is never built.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..arguments import int_list
from ..ops import vocab_projection
from ..adapters.unembedding import Readout, find_readout
from ..inputs import ModelInputs
from ..results.lens import LensResult
from .readout import (block_output, hooks, input_tokens, last_position_index, lens_inputs, lens_target,
                      readout_logits, token_table)
from ..model_lock import holds_model

__all__ = ["logit_lens", "normed_stream"]


def _check_indices(values: Sequence[int] | int | None, n: int, what: str, unit: str) -> list[int]:
    """``values`` (None = all, negative from the end) as indices in ``0..n-1``, or a ValueError naming the range."""
    if values is None:
        return list(range(n))
    out = []
    for v in int_list(values, f"{what}s"):
        if not -n <= v < n:
            raise ValueError(f"{what} {v} out of range: {unit} {n} {what}s (0..{n - 1}, or -{n}..-1)")
        out.append(v % n)
    if not out:
        raise ValueError(f"{what}s is empty; pass None for every {what}")
    return out


def normed_stream(model: nn.Module, readout: Readout, mi: ModelInputs, layers: list[int],
                  positions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """One forward of the model body (no LM head) with a hook on every wanted block that applies the final norm to
    the block's output at ``positions`` and writes it into one preallocated stack.

    Returns the normed stack ``[len(layers), batch * len(positions), d]``, the normed final block output at the same
    rows (the KL's reference; a view into the stack when the last layer is among ``layers``) and the final block's
    raw output at each example's last non-padding position ``[batch, d]`` (for binding the target).
    """
    n_layers = len(readout.blocks)
    slots: dict[int, list[int]] = {}
    for slot, layer in enumerate(layers):
        slots.setdefault(layer, []).append(slot)
    kept: dict[str, Tensor] = {}
    rows = torch.arange(mi.batch, device=mi.input_ids.device)
    last = last_position_index(mi)

    def hook_for(i: int):
        def hook(module, args, output):
            x = block_output(output).detach()
            normed = readout.norm(x[:, positions]).reshape(-1, x.shape[-1])
            if "stack" not in kept:
                kept["stack"] = normed.new_empty((len(layers), *normed.shape))
            for slot in slots.get(i, ()):
                kept["stack"][slot].copy_(normed)
            if i == n_layers - 1:
                kept["reference"] = kept["stack"][slots[i][0]] if i in slots else normed
                kept["last"] = x[rows, last]
        return hook

    body = getattr(model, "base_model", model)
    wanted = sorted(set(layers) | {n_layers - 1})
    with hooks([readout.blocks[i].register_forward_hook(hook_for(i)) for i in wanted]), torch.no_grad():
        body(**mi.forward_kwargs(rows))
    return kept["stack"], kept["reference"], kept["last"]


@holds_model
def logit_lens(
    model: nn.Module,
    inputs: object,
    *,
    tokenizer: object = None,
    layers: Sequence[int] | int | None = None,
    positions: Sequence[int] | int | None = None,
    top_k: int = 5,
    target: object = None,
    vocab_chunk: int = 0,
) -> LensResult:
    """Read every layer's residual stream (after the layer) through the model's final norm and unembedding.

    Args:
        model: a Hugging Face language model with its head (``*ForCausalLM``: Llama, Qwen2, Mistral, Gemma2,
            GPT-2, GPT-NeoX, ...; or a masked LM such as ``BertForMaskedLM``, whose prediction-head transform plays
            the final norm).
        inputs: what a tokenizer returns, an ``input_ids`` tensor, or strings with ``tokenizer=``.
        layers: layer indices (negative from the end); None = all. Layer ``i`` is the output of block ``i``.
        positions: positions to read (negative from the end); None = all.
        top_k: tokens kept per (layer, position), ``1 <= top_k <= vocab``.
        target: the token whose probability and rank are reported at every layer and position: None (the model's
            own next-token prediction at the last non-padding position), a token id, a single-token string (with
            ``tokenizer=``), one per example, ``TokenId``/``NextToken``, or ``Contrast(a, b)`` (both tokens, and
            the log-probability difference ``log p(a) - log p(b)``, which equals the logit difference).
        vocab_chunk: vocabulary entries per tile of the streaming projection (0 = automatic); the results do not
            depend on it.

    Returns:
        :class:`~attnscope.results.LensResult` with ``topk_ids``/``topk_probs`` ``[layer, batch, pos, k]``,
        ``target_probs``/``target_ranks`` ``[layer, batch, pos, T]``, ``entropy`` and ``kl`` ``[layer, batch, pos]``
        (``kl`` is ``KL(final || layer)`` in nats, the final distribution being the model's own output).
    """
    readout = find_readout(model)
    vocab = int(readout.weight.shape[0])
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= vocab:
        raise ValueError(f"top_k must be an integer in 1..{vocab} (the vocabulary size), got {top_k!r}")
    n_layers = len(readout.blocks)
    layer_list = _check_indices(layers, n_layers, "layer", "the model has")
    mi = lens_inputs(model, inputs, tokenizer)
    pos_list = _check_indices(positions, mi.seq, "position", "the input has")
    pos_t = torch.tensor(pos_list, device=mi.input_ids.device)
    normed, reference, final_last = normed_stream(model, readout, mi, layer_list, pos_t)
    g, b, p = len(layer_list), mi.batch, len(pos_list)
    with torch.no_grad():
        target_ids, kind, described = lens_target(target, tokenizer, model, mi, readout_logits(readout, final_last))
        targets = target_ids.to(normed.device)[:, None, :].expand(b, p, target_ids.shape[1]).reshape(b * p, -1)
        out = vocab_projection(normed, readout.weight.detach(),
                               None if readout.bias is None else readout.bias.detach(), reference=reference,
                               targets=targets.contiguous(), k=top_k, softcap=readout.softcap,
                               vocab_chunk=vocab_chunk)
    shape = (g, b, p)
    topk_ids = out.topk_ids.reshape(*shape, top_k).cpu()
    return LensResult(
        topk_ids=topk_ids,
        topk_probs=out.topk_logprobs.exp().reshape(*shape, top_k).float().cpu(),
        target_ids=target_ids.cpu(),
        target_probs=out.target_logprobs.exp().reshape(*shape, -1).float().cpu(),
        target_logprobs=out.target_logprobs.reshape(*shape, -1).float().cpu(),
        target_ranks=out.target_ranks.reshape(*shape, -1).cpu(),
        entropy=out.entropy.reshape(shape).float().cpu(),
        kl=out.kl.reshape(shape).float().cpu(),
        layers=layer_list,
        positions=pos_list,
        tokens=input_tokens(tokenizer, mi),
        attention_mask=mi.attention_mask.cpu(),
        vocab=token_table(tokenizer, torch.cat([topk_ids.reshape(-1), target_ids.reshape(-1).cpu()])),
        target=described,
        target_kind=kind,
        n_layers=n_layers,
    )
