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
