"""attention_x_gradient: the Chefer et al. (2021) rule on captured attention and its gradient.

One forward with every layer captured (``grad=True``), one backward of the target; then per layer
``Abar = mean_h max(0, dF/dA * A)`` and ``R <- R + Abar R`` from the first layer up (C++ op
``attention_grad_relevance``). The scores of an example are the row of ``R`` at the target's position: the last
non-padding token for causal LMs, the first token ([CLS]) otherwise, or the mean over non-padding rows for
mean-pooled encoders (``position="mean"``).

Reference: H. Chefer, S. Gur, L. Wolf. Generic Attention-model Explainability for Interpreting Bi-Modal and
Encoder-Decoder Transformers. ICCV 2021.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from ..capturing import capture
from ..ops import attention_grad_relevance


def relevance_rows(relevance: Tensor, attention_mask: Tensor, position: str) -> Tensor:
    """[batch, n] scores from [batch, n, n] relevance: the row at ``position`` ("last", "first", "mean")."""
    mask = attention_mask.to(relevance.device).bool()
    if position == "mean":
        weights = mask.to(relevance.dtype)
        rows = (relevance * weights[:, :, None]).sum(1) / weights.sum(1, keepdim=True)
    elif position in ("last", "first"):
        n = mask.shape[1]
        idx = torch.arange(n, device=mask.device)
        pick = (idx * mask).amax(1) if position == "last" else torch.where(mask, idx, n).amin(1)
        rows = relevance[torch.arange(relevance.shape[0]), pick]
    else:
        raise ValueError(f"position must be 'last', 'first' or 'mean', got {position!r}")
    return rows.masked_fill(~mask, 0.0)  # padding positions never receive attribution


def attention_x_gradient(model: nn.Module, inputs: dict[str, Tensor], score: Callable[[object], Tensor], *,
                         position: str | Callable[[object], str]) -> tuple[Tensor, Tensor]:
    """Scores [batch, seq] and the target values [batch] for ``score(outputs) -> Tensor[batch]``.

    ``position`` is "last", "first", "mean", or a function of the model outputs returning one of them.
    """
    from ..adapters import find_word_embeddings

    # The attention outputs must carry a graph even when the parameters are frozen: start it at the embeddings.
    handle = find_word_embeddings(model).register_forward_hook(lambda _m, _i, out: out.detach().requires_grad_())
    try:
        with torch.enable_grad(), capture(model, grad=True) as cap:
            outputs = model(**inputs)
            target = score(outputs)
            target.sum().backward()
    finally:
        handle.remove()
    if callable(position):
        position = position(outputs)
    res = cap.result
    grad = res.grad
    if grad is None:
        raise RuntimeError("no attention gradient was recorded: the target does not depend on the attention outputs")
    relevance = attention_grad_relevance(res.weights, grad)
    mask = inputs.get("attention_mask")
    if mask is None:
        mask = torch.ones(relevance.shape[0], relevance.shape[1], dtype=torch.long)
    return relevance_rows(relevance, mask, position), target.detach()
