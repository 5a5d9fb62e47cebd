"""Attribution op: attention x gradient relevance (``cpp/ops/attention_grad_relevance.cpp``, core
``cpp/src/relevance.cpp``)."""

from __future__ import annotations

import torch
from torch import Tensor

from .devices import check_one_device
from .spec import probs_dtype

__all__ = ["attention_grad_relevance"]


def attention_grad_relevance(attn: Tensor, grad: Tensor) -> Tensor:
    """Chefer et al. (2021) relevance: per layer ``Abar = mean_h max(0, grad * attn)``, ``R <- R + Abar @ R``.

    Args:
        attn, grad: ``[layer, batch, head, n, n]`` attention probabilities and dF/dA, first layer first.

    Returns:
        ``[batch, n, n]``; row ``i`` is the relevance of each input token for position ``i``.
    """
    return torch.ops.attnscope.attention_grad_relevance(attn, grad)


@torch.library.register_fake("attnscope::attention_grad_relevance_generic")
@torch.library.register_fake("attnscope::attention_grad_relevance")
def _attention_grad_relevance_fake(attn, grad):
    check_one_device("attention_grad_relevance", attn=attn, grad=grad)
    return attn.new_empty((attn.shape[1], attn.shape[3], attn.shape[4]), dtype=probs_dtype(attn.dtype))
