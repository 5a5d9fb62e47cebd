"""Direct logit attribution: the target logit (or a logit difference) split into the embeddings, every attention
head, every MLP and the biases, with the final norm's scale frozen at its value for the input.

With the final norm frozen, ``logit = u . norm(x_L) + b_U`` is linear in the final residual stream
``x_L = embed + sum_l (attn_l + mlp_l)``, so each term's share is ``g . term`` with ``g`` the frozen norm's pullback
of the unembedding direction ``u`` (``W_U[a]``, or ``W_U[a] - W_U[b]`` for a contrast). A head's term is its slice of
the attention output through its slice of the output projection, ``z_h @ W_O[h]``; ``z_h`` (the per-head output
before the projection) comes from the capture engine's consumer interface (attnscope's attention function,
registered with transformers' AttentionInterface for the scope of the call). Sandwich norms (Gemma2's post-attention and post-feed-forward norms)
are frozen the same way. Post-LN encoders (BERT) normalise the residual stream inside every block, so no such sum
exists and they are refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from ..capturing import AttentionEvent, capture
from ..adapters.unembedding import BlockParts, block_parts, find_readout, freeze_norm
from ..inputs import token_strings
from ..results.dla import DLAResult
from .readout import block_output, hooks, input_tokens, last_position_index, lens_inputs, lens_target, readout_logits
from ..model_lock import holds_model

__all__ = ["direct_logit_attribution"]


@contextlib.contextmanager
def head_outputs(model: nn.Module, modules: list[nn.Module], rows: Tensor, last: Tensor) -> Iterator[dict]:
    """Record each attention module's per-head output ``[batch, heads, head_dim]`` at the positions ``last``, through
    the capture engine's consumer interface (``record=False``: the model's own attention computes the outputs and
    no weights are kept); everything is removed on exit, also on exceptions."""
    recorded: dict[nn.Module, Tensor] = {}
    wanted = set(map(id, modules))

    class HeadOutputs:
        needs_probs = False

        def on_attention(self, event: AttentionEvent) -> None:
            if id(event.module) in wanted:  # [batch, seq, heads, head_dim], what the output projection reshapes
                recorded[event.module] = event.output[rows, last]

    with capture(model, consumers=[HeadOutputs()], record=False):
        yield recorded


def _post_ln_error(model: nn.Module) -> ValueError:
    return ValueError(
        f"direct logit attribution does not apply to {type(model).__name__}: it is a post-LN encoder (every block "
        "normalises the residual stream after adding to it), so the final state is not a sum of the embeddings and "
        "the blocks' outputs. It needs a pre-LN model (Llama, Qwen2, Mistral, Gemma2, GPT-2, GPT-NeoX, ...); the "
        "logit lens (attnscope.logit_lens) works for this model")


@holds_model
def direct_logit_attribution(
    model: nn.Module,
    inputs: object,
    *,
    target: object = None,
    tokenizer: object = None,
    by: str = "head",
) -> DLAResult:
    """Decompose the target logit at each example's last non-padding position into its direct contributions.

    Args:
        model: a pre-LN Hugging Face causal LM with its head (Llama, Qwen2, Mistral, Gemma2, GPT-2, GPT-NeoX, ...).
        inputs: what a tokenizer returns, an ``input_ids`` tensor, or strings with ``tokenizer=``.
        target: None (the model's next-token prediction), a token id, a single-token string (with
            ``tokenizer=``), one per example, ``TokenId``/``NextToken``, or ``Contrast(a, b)`` (the logit
            difference ``logit(a) - logit(b)``).
        by: "head" (every attention head, plus each output projection's bias) or "layer" (each attention block).

    The final norm's scale (and Gemma2's post-attention/post-feed-forward norm scales) are frozen at their values
    for the input, the convention of the field. ``delta`` is the logit (before any final soft-capping) minus the sum
    of all contributions: float rounding only.
    """
    if by not in ("head", "layer"):
        raise ValueError(f"by must be 'head' or 'layer', got {by!r}")
    readout = find_readout(model)
    if readout.post_ln:
        raise _post_ln_error(model)
    parts = block_parts(model, readout)
    mi = lens_inputs(model, inputs, tokenizer)
    last = last_position_index(mi)
    rows = torch.arange(mi.batch, device=last.device)
    kept: dict[str, Tensor] = {}

    def at_last(name):
        def hook(module, args, output):
            kept[name] = block_output(output).detach()[rows, last]
        return hook

    def embed_hook(module, args, kwargs):
        x = args[0] if args else kwargs["hidden_states"]
        kept["embed"] = x.detach()[rows, last]

    handles = [readout.blocks[0].register_forward_pre_hook(embed_hook, with_kwargs=True),
               readout.blocks[-1].register_forward_hook(at_last("final"))]
    for i, p in enumerate(parts):
        handles.append(p.attention.register_forward_hook(at_last(f"attn{i}")))
        handles.append(p.mlp.register_forward_hook(at_last(f"mlp{i}")))
    body = getattr(model, "base_model", model)
    attn_modules = [p.attention for p in parts] if by == "head" else []
    with hooks(handles), head_outputs(model, attn_modules, rows, last) as z, torch.no_grad():
        body(**mi.forward_kwargs(rows))
    if by == "head" and len(z) != len(parts):
        raise ValueError(f"{type(model).__name__}'s attention does not go through transformers' AttentionInterface "
                         f"({len(z)} of {len(parts)} layers seen), so per-head outputs are not available; use by='layer'")

    with torch.no_grad():
        x_final = kept["final"]  # [batch, d]
        target_ids, kind, described = lens_target(target, tokenizer, model, mi, readout_logits(readout, x_final))
        target_ids = target_ids.to(x_final.device)
        w = readout.weight.detach().double()
        u = w[target_ids[:, 0]] - (w[target_ids[:, 1]] if kind == "contrast" else 0.0)  # [batch, d]
        final_norm = freeze_norm(readout.norm_module, x_final)
        g = final_norm.pullback(u)
        # The logit the decomposition explains: the model's own readout before any soft-capping.
        normed = readout.norm(x_final).double()
        logit = (normed * u).sum(-1)
        names, values = ["embed"], [(g * kept["embed"].double()).sum(-1)]
        heads, attn, mlp = [], [], []
        for i, p in enumerate(parts):
            g_attn = g if p.post_attention_norm is None else freeze_norm(p.post_attention_norm, kept[f"attn{i}"]).pullback(g)
            g_mlp = g if p.post_mlp_norm is None else freeze_norm(p.post_mlp_norm, kept[f"mlp{i}"]).pullback(g)
            if by == "head":
                per_head = _head_terms(p, z[p.attention], g_attn)  # [batch, heads]
                heads.append(per_head)
                names += [f"L{i}H{h}" for h in range(p.num_heads)]
                values += list(per_head.unbind(1))
                layer_attn = per_head.sum(1)
                if p.o_bias is not None:
                    bias_term = (g_attn * p.o_bias.detach().double()).sum(-1)
                    names.append(f"L{i}.attn_bias")
                    values.append(bias_term)
                    layer_attn = layer_attn + bias_term
            else:
                layer_attn = (g_attn * kept[f"attn{i}"].double()).sum(-1)
                names.append(f"L{i}.attn")
                values.append(layer_attn)
            mlp_term = (g_mlp * kept[f"mlp{i}"].double()).sum(-1)
            names.append(f"L{i}.mlp")
            values.append(mlp_term)
            attn.append(layer_attn)
            mlp.append(mlp_term)
        if final_norm.beta is not None:
            names.append("final_norm.bias")
            values.append((u * final_norm.beta).sum(-1))
        if readout.bias is not None:
            b = readout.bias.detach().double()
            names.append("lm_head.bias")
            values.append(b[target_ids[:, 0]] - (b[target_ids[:, 1]] if kind == "contrast" else 0.0))
            logit = logit + values[-1]
        contributions = torch.stack(values, dim=1)  # [batch, components]
        delta = logit - contributions.sum(1)
    n_heads = parts[0].num_heads
    head_t = torch.stack(heads, 1) if heads else torch.full((mi.batch, len(parts), n_heads), float("nan"),
                                                            dtype=torch.float64)
    return DLAResult(
        names=names, values=contributions.cpu(), heads=head_t.cpu(), attn=torch.stack(attn, 1).cpu(),
        mlp=torch.stack(mlp, 1).cpu(), logit=logit.cpu(), delta=delta.cpu(), by=by, target=described,
        target_kind=kind, target_ids=target_ids.cpu(), tokens=input_tokens(tokenizer, mi), positions=last.cpu(),
        vocab={str(int(t)): s for t, s in zip(target_ids.reshape(-1).tolist(), _strings(tokenizer, target_ids))},
    )


def _head_terms(p: BlockParts, z: Tensor, g: Tensor) -> Tensor:
    """``[batch, heads]``: ``g . (z_h @ W_O[h])`` for every head (``z`` ``[batch, heads, head_dim]``)."""
    w = p.head_weights().detach().double()  # [heads, head_dim, d]
    gw = torch.einsum("hkd,bd->bhk", w, g)  # the pullback through each head's slice
    return (gw * z.double()).sum(-1)


def _strings(tokenizer: object, ids: Tensor) -> list[str]:
    return token_strings(tokenizer, ids.reshape(-1).tolist())
