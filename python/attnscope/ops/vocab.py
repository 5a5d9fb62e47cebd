"""The door to the C++ op ``vocab_projection`` (the streaming logit-lens readout): typed wrapper and fake kernel.

The core is ``cpp/src/vocab_projection.cpp``; the schema is in ``cpp/ops/vocab_projection.cpp``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .._extension import _C  # noqa: F401  (registers torch.ops.attnscope)
from .devices import check_one_device

__all__ = ["VocabProjection", "vocab_projection", "vocab_projection_generic"]


class VocabProjection(NamedTuple):
    """What :func:`vocab_projection` returns; ``G`` groups (layers) of ``P`` rows (positions), ``T`` targets."""

    topk_logprobs: Tensor  # [G, P, k] log-probabilities of the k most likely tokens, descending
    topk_ids: Tensor  # [G, P, k] int64; ties: the smaller id first
    logsumexp: Tensor  # [G, P]
    entropy: Tensor  # [G, P] nats
    kl: Tensor  # [G, P] KL(reference || row) in nats; 0 without a reference
    target_logprobs: Tensor  # [G, P, T]
    target_ranks: Tensor  # [G, P, T] int64, 0 = the most likely token


def vocab_projection(
    hidden: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    *,
    reference: Tensor | None = None,
    targets: Tensor | None = None,
    k: int = 5,
    softcap: float = 0.0,
    vocab_chunk: int = 0,
    row_block: int = 0,
) -> VocabProjection:
    """Streamed ``softmax(softcap(hidden @ weight.T + bias))`` statistics, one vocabulary chunk at a time.

    Args:
        hidden: ``[G, P, d]`` rows already through the model's final norm (``[P, d]`` is taken as ``G = 1``).
        weight: ``[V, d]`` unembedding; ``bias``: ``[V]`` or None.
        reference: ``[P, d]`` rows whose distributions the KL divergence ``KL(ref || row)`` is taken from.
        targets: ``[P, T]`` int64 token ids whose log-probability and rank are reported (None: ``T = 0``).
        k: how many top tokens (1..V). softcap: ``c * tanh(z / c)`` on the logits when ``c > 0``.
        vocab_chunk: vocabulary entries per tile (0 = 2048); row_block: rows per block (0 = automatic).
            The results do not depend on ``vocab_chunk``; memory beyond the inputs is one tile.

    Not differentiable. float64 inputs compute in float64, all others in float32. The C++ kernel serves the CPU;
    the op's CUDA, MPS and XPU kernels are :func:`vocab_projection_generic` (the same streaming in torch operations).
    """
    squeeze = hidden.dim() == 2
    if squeeze:
        hidden = hidden.unsqueeze(0)
    if targets is None:
        targets = torch.zeros((hidden.shape[1], 0), dtype=torch.long, device=hidden.device)
    args = (hidden, weight, bias, reference, targets, int(k), float(softcap), int(vocab_chunk), int(row_block))
    out = torch.ops.attnscope.vocab_projection(*args)
    return VocabProjection(*(t.squeeze(0) for t in out) if squeeze else out)


def vocab_projection_generic(hidden: Tensor, weight: Tensor, bias: Tensor | None, reference: Tensor | None,
                             targets: Tensor, k: int, softcap: float, vocab_chunk: int,
                             row_block: int) -> tuple[Tensor, ...]:
    """The device-generic path of ``vocab_projection``: the same streaming over vocabulary chunks in torch
    operations (running top-k by merging, online log-sum-exp, entropy and KL sums in float64), on any device.
    Ties in the top-k go to the smaller id, as in the kernel (stable sorts). ``row_block`` is ignored (every row
    streams at once)."""
    g, p, d = hidden.shape
    v = weight.shape[0]
    if not 1 <= k <= v:
        raise RuntimeError(f"k must be in 1..{v} (the vocabulary size), got {k}")
    if softcap < 0:
        raise RuntimeError(f"softcap must be >= 0 (0 = none), got {softcap}")
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= v):
        raise RuntimeError(f"target token ids must be in 0..{v - 1}")
    compute = torch.float64 if hidden.dtype == torch.float64 else torch.float32
    rows = hidden.to(compute).reshape(g * p, d)
    ref = None if reference is None else reference.to(compute)
    n_t = targets.shape[1]
    chunk = vocab_chunk or 2048
    tgt = targets.unsqueeze(0).expand(g, p, n_t).reshape(g * p, n_t)
    w_t = weight.index_select(0, targets.reshape(-1)).to(compute).reshape(p, n_t, d)
    z_t = torch.einsum("gpd,ptd->gpt", hidden.to(compute), w_t).reshape(g * p, n_t)
    if bias is not None:
        z_t = z_t + bias.to(compute)[tgt]
    if softcap > 0:
        z_t = torch.tanh(z_t / softcap) * softcap
    f64 = dict(dtype=torch.float64, device=hidden.device)
    m = torch.full((g * p,), float("-inf"), **f64)
    s, t, u = (torch.zeros(g * p, **f64) for _ in range(3))
    mf, sf = torch.full((p,), float("-inf"), **f64), torch.zeros(p, **f64)
    top_v = torch.full((g * p, 0), float("-inf"), dtype=compute, device=hidden.device)
    top_i = torch.zeros((g * p, 0), dtype=torch.long, device=hidden.device)
    ranks = torch.zeros((g * p, n_t), dtype=torch.long, device=hidden.device)

    def logits(x: Tensor, v0: int, c: int) -> Tensor:
        z = x @ weight[v0:v0 + c].to(compute).t()
        if bias is not None:
            z = z + bias[v0:v0 + c].to(compute)
        return torch.tanh(z / softcap) * softcap if softcap > 0 else z

    for v0 in range(0, v, chunk):
        c = min(chunk, v - v0)
        z = logits(rows, v0, c)
        ids = torch.arange(v0, v0 + c, device=hidden.device)
        # A stable sort: the running entries (smaller ids on ties) come before this chunk's, which are in id order.
        top_v, pick = torch.cat([top_v, z], 1).sort(dim=1, descending=True, stable=True)
        top_v, pick = top_v[:, :k], pick[:, :k]
        top_i = torch.cat([top_i, ids.expand(g * p, c)], 1).gather(1, pick)
        ranks += ((z.unsqueeze(1) > z_t.unsqueeze(2)) & (ids != tgt.unsqueeze(2))).sum(2)
        zd = z.double()
        m_new = torch.maximum(m, zd.amax(1))
        scale = torch.exp(m - m_new)
        e = torch.exp(zd - m_new[:, None])
        t = scale * (t + torch.nan_to_num(m - m_new) * s) + (e * (zd - m_new[:, None])).sum(1)
        s = s * scale + e.sum(1)
        m = m_new
        if ref is not None:
            f = logits(ref, v0, c).double()
            mf_new = torch.maximum(mf, f.amax(1))
            ef = torch.exp(f - mf_new[:, None])
            scale_f = torch.exp(mf - mf_new)
            diff = (f.unsqueeze(0) - zd.view(g, p, c)) * ef.unsqueeze(0)
            u = (u.view(g, p) * scale_f + diff.sum(2)).reshape(-1)
            sf = sf * scale_f + ef.sum(1)
            mf = mf_new
    lse = m + s.log()
    out_dtype = dict(dtype=compute)
    kl = torch.zeros(g * p, **f64)
    if ref is not None:
        lse_f = (mf + sf.log()).repeat(g)
        kl = (u / sf.repeat(g) - lse_f + lse).clamp_min(0)
    target_lp = z_t.double() - lse[:, None]
    return ((top_v.double() - lse[:, None]).to(**out_dtype).reshape(g, p, k), top_i.reshape(g, p, k),
            lse.to(**out_dtype).reshape(g, p), (s.log() - t / s).to(**out_dtype).reshape(g, p),
            kl.to(**out_dtype).reshape(g, p), target_lp.to(**out_dtype).reshape(g, p, n_t), ranks.reshape(g, p, n_t))


@torch.library.register_fake("attnscope::vocab_projection")
def _vocab_projection_fake(hidden, weight, bias, reference, targets, k, softcap, vocab_chunk, row_block):
    check_one_device("vocab_projection", hidden=hidden, weight=weight, bias=bias, reference=reference,
                     targets=targets)
    g, p = hidden.shape[0], hidden.shape[1]
    t = targets.shape[1]
    dtype = torch.float64 if hidden.dtype == torch.float64 else torch.float32
    f = dict(dtype=dtype, device=hidden.device)
    i = dict(dtype=torch.long, device=hidden.device)
    return (hidden.new_empty((g, p, k), **f), hidden.new_empty((g, p, k), **i), hidden.new_empty((g, p), **f),
            hidden.new_empty((g, p), **f), hidden.new_empty((g, p), **f), hidden.new_empty((g, p, t), **f),
            hidden.new_empty((g, p, t), **i))


# The op's kernel on the non-CPU devices (the C++ kernel serves the CPU).
for _device in ("cuda", "mps", "xpu"):
    torch.library.impl("attnscope::vocab_projection", _device)(vocab_projection_generic)
