"""Plain-PyTorch references for rollout and flow tests (the paper's construction, not attnscope's code)."""

from __future__ import annotations

import torch


def augmented(attn, residual=True, head_reduce="mean"):
    """Â per layer, [layer, batch, L, L]: heads reduced, residual identity added and rows re-normalised."""
    a = attn.double()
    a = a.mean(2) if head_reduce == "mean" else a.amax(2)
    if residual:
        a = a + torch.eye(a.shape[-1], dtype=a.dtype)
        a = a / a.sum(-1, keepdim=True)
    return a


# --- plain-torch (and numpy) references of the other ops, for the property tests -------------------------------------
import math  # noqa: E402

import numpy as np  # noqa: E402


def attention_probs(q, k, mask=None, *, scale, is_causal=False, window=0, softcap=0.0, sinks=None):
    """Plain PyTorch in float64: repeat kv heads, full logits, masks, softmax (with a sink column); rows with no
    visible key are zeros (attnscope's convention; torch's softmax gives NaN there)."""
    heads, kv_heads, q_len, k_len = q.shape[1], k.shape[1], q.shape[2], k.shape[2]
    logits = q.double() @ k.double().repeat_interleave(heads // kv_heads, dim=1).transpose(-1, -2) * scale
    if softcap > 0:
        logits = torch.tanh(logits / softcap) * softcap
    if mask is not None:
        logits = logits.masked_fill(~mask, -math.inf) if mask.dtype == torch.bool else logits + mask.double()
    pos = torch.arange(q_len)[:, None] + (k_len - q_len)
    key = torch.arange(k_len)[None, :]
    if is_causal or window > 0:
        logits = logits.masked_fill(key > pos, -math.inf)
    if window > 0:
        logits = logits.masked_fill(pos - key >= window, -math.inf)
    if sinks is not None:
        col = sinks.double().view(1, heads, 1, 1).expand(q.shape[0], heads, q_len, 1)
        return torch.cat([logits, col], dim=-1).softmax(-1)[..., :k_len]
    return torch.nan_to_num(logits.softmax(-1), nan=0.0)


def entropy(p):
    """-sum p log p over the last axis (0 log 0 = 0), float64."""
    p = p.double()
    return -torch.where(p > 0, p * p.clamp_min(1e-300).log(), torch.zeros_like(p)).sum(-1)


def reduced(p, heads=None, reduce=None):
    """attention_probs_reduced's weights from full probabilities p [batch, heads, q, k]."""
    sel = p if not heads else p[:, list(heads)]
    if reduce is None:
        return sel
    return {"mean": sel.mean(1), "sum": sel.sum(1), "max": sel.amax(1)}[reduce]


def head_stats(p, input_ids=None, valid=None, period=0):
    """attention_head_stats' (sums [batch, heads, 6], counts [batch, 6]) by the definitions, one row at a time."""
    batch, heads, q_len, k_len = p.shape
    sums = torch.zeros(batch, heads, 6, dtype=torch.float64)
    counts = torch.zeros(batch, 6, dtype=torch.long)
    for b in range(batch):
        ok = [True] * k_len if valid is None else [bool(v) for v in valid[b].tolist()]
        ids = None if input_ids is None else input_ids[b].tolist()

        def is_valid(i, ok=ok):
            return 0 <= i < k_len and ok[i]

        first = next((j for j in range(k_len) if ok[j]), None)
        for i in range(q_len):
            pos = i + k_len - q_len
            if not is_valid(pos):
                continue
            row = p[b, :, i].double()  # [heads, k]
            dist = torch.tensor([abs(pos - j) for j in range(k_len)], dtype=torch.float64)
            stats = {3: entropy(row), 5: (row * dist).sum(-1)}
            if is_valid(pos - 1):
                stats[0] = row[:, pos - 1]
            if ids is not None and period > 0 and is_valid(pos - period) and is_valid(pos - period + 1) \
                    and ids[pos] == ids[pos - period]:
                stats[1] = row[:, pos - period + 1]
            dups = [j for j in range(min(pos, k_len)) if ids is not None and ok[j] and ids[j] == ids[pos]]
            if dups:
                stats[2] = row[:, dups].sum(-1)
            if first is not None:
                stats[4] = row[:, first]
            for s, v in stats.items():
                sums[b, :, s] += v
                counts[b, s] += 1
    return sums, counts


def rollout(attn, residual=True, head_reduce="mean"):
    """Abnar & Zuidema's compute_joint_attention in torch: R = Â_{n-1} ... Â_0."""
    a = augmented(attn, residual, head_reduce)
    r = a[0]
    for layer in a[1:]:
        r = layer @ r
    return r


def grad_relevance(attn, grad):
    """Chefer et al.: R = I; per layer R += mean_h(max(0, grad * attn)) @ R."""
    n = attn.shape[-1]
    r = torch.eye(n, dtype=torch.float64).expand(attn.shape[1], n, n)
    for a, g in zip(attn.double(), grad.double()):
        r = r + (a * g).clamp_min(0).mean(1) @ r
    return r


def gauss_legendre(n):
    """numpy's Gauss-Legendre mapped to [0, 1]."""
    x, w = np.polynomial.legendre.leggauss(n)
    return torch.from_numpy(0.5 * (x + 1)), torch.from_numpy(0.5 * w)


def composite_gauss_legendre(bounds, order):
    x, w = gauss_legendre(order)
    b = bounds.double()
    widths = (b[1:] - b[:-1])[:, None]
    return (b[:-1, None] + widths * x).reshape(-1), (widths * w).reshape(-1)


def refine_segments(bounds, errors, tolerance, max_new):
    """Split the largest-error segments (ties: the earlier) until the unsplit errors sum to <= tolerance."""
    e = errors.double().abs().tolist()
    order = sorted(range(len(e)), key=lambda s: (-e[s], s))
    left, split = sum(e), set()  # summed in segment order, as the definition reads
    for s in order:
        if left <= tolerance or len(split) >= max_new:
            break
        split.add(s)
        left -= e[s]
    b = bounds.double().tolist()
    out = []
    for s in range(len(e)):
        out.append(b[s])
        if s in split:
            out.append(0.5 * (b[s] + b[s + 1]))
    return torch.tensor(out + [b[-1]], dtype=torch.float64)


def topk_merge(values, keys, new_values, new_keys):
    """The k best (value desc, key asc) of the running lists and the new rows, NaN skipped, empty = (-inf, -1)."""
    units, k = values.shape
    out_v = torch.full_like(values, -math.inf)
    out_k = torch.full_like(keys, -1)
    for u in range(units):
        cand = [(v, kk) for v, kk in zip(values[u].tolist(), keys[u].tolist()) if kk >= 0]
        cand += [(v, kk) for v, kk in zip(new_values[:, u].tolist(), new_keys.tolist()) if not math.isnan(v)]
        best = sorted(cand, key=lambda x: (-x[0], x[1]))[:k]
        for j, (v, kk) in enumerate(best):
            out_v[u, j], out_k[u, j] = v, kk
    return out_v, out_k


def vocab_projection(hidden, weight, bias, reference, targets, k, softcap):
    """Full-vocabulary softmax statistics in float64 (ties in the top-k: the smaller id first)."""
    def logits(x):
        z = x.double() @ weight.double().t()
        z = z + bias.double() if bias is not None else z
        return torch.tanh(z / softcap) * softcap if softcap else z

    z = logits(hidden)  # [G, P, V]
    lp = torch.log_softmax(z, -1)
    ids = torch.arange(z.shape[-1], dtype=torch.float64)
    order = torch.from_numpy(np.lexsort((ids.expand_as(z).numpy(), -z.numpy()), axis=-1)).long()[..., :k]
    idx = targets.unsqueeze(0).expand(hidden.shape[0], -1, -1)
    tz = z.gather(-1, idx)
    if reference is not None:
        lq = torch.log_softmax(logits(reference), -1)
        kl = (lq.exp() * (lq - lp)).sum(-1)
    else:
        kl = torch.zeros(z.shape[:-1], dtype=torch.float64)
    return dict(topk_logprobs=lp.gather(-1, order), topk_ids=order, logsumexp=torch.logsumexp(z, -1),
                entropy=-(lp.exp() * lp).sum(-1), kl=kl, target_logprobs=lp.gather(-1, idx),
                target_ranks=(z.unsqueeze(-2) > tz.unsqueeze(-1)).sum(-1))
