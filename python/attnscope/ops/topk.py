"""The running top-k merge op (``torch.ops.attnscope.topk_merge``): typed wrapper and fake kernel."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .._extension import _C  # noqa: F401  (loads the ops library)
from .devices import check_one_device

__all__ = ["TopkMerge", "empty_topk", "topk_merge"]


class TopkMerge(NamedTuple):
    values: Tensor  # [units, k], best first
    keys: Tensor  # [units, k] int64, -1 = empty
    source: Tensor  # [units, k] int64: j < k = old slot j, k + r = row r of the new block, -1 = empty


def empty_topk(units: int, k: int, *, dtype: torch.dtype = torch.float32,
               device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """Empty running lists: values ``-inf`` and keys ``-1``, ``[units, k]``."""
    values = torch.full((units, k), float("-inf"), dtype=dtype, device=device)
    return values, torch.full((units, k), -1, dtype=torch.long, device=device)


def topk_merge(values: Tensor, keys: Tensor, new_values: Tensor, new_keys: Tensor) -> TopkMerge:
    """Merge running top-k lists ``values``/``keys`` ``[units, k]`` with a block ``new_values`` ``[rows, units]``
    whose row ``r`` has key ``new_keys[r]`` (int64).

    Order: larger value first, equal values by smaller key (encode (text, position) in the key so that ties go to the
    earlier text and position); empty slots last; NaN values are skipped. The keys of one stream must be distinct.
    """
    return TopkMerge(*torch.ops.attnscope.topk_merge(values, keys, new_values, new_keys))


@torch.library.register_fake("attnscope::topk_merge_generic")
@torch.library.register_fake("attnscope::topk_merge")
def _topk_merge_fake(values, keys, new_values, new_keys):
    check_one_device("topk_merge", values=values, keys=keys, new_values=new_values, new_keys=new_keys)
    torch._check(values.dim() == 2, lambda: f"values must be [units, k], got {values.dim()}-D")
    torch._check(new_values.dim() == 2, lambda: f"new_values must be [rows, units], got {new_values.dim()}-D")
    return torch.empty_like(values), torch.empty_like(keys), torch.empty_like(keys)
