"""The one-device rule of the ops' fake (meta) kernels.

A tensor on the meta device among CPU tensors sends a call to the op's fake kernel (the dispatcher picks the
meta backend), which never reaches the C++ door checks (``cpp/src/checks.cpp``): without this check it would return
an uninitialised or meta result for inputs the real kernel refuses.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["check_one_device"]


def check_one_device(op: str, **tensors: Tensor | None) -> None:
    """Raise the C++ checks' error when the given tensors (None = absent) are not all on one device."""
    first: tuple[str, torch.device] | None = None
    for name, t in tensors.items():
        if t is None:
            continue
        if first is None:
            first = (name, t.device)
        elif t.device != first[1]:
            raise ValueError(f"{op}: all tensors must be on one device, got {first[0]} on {first[1]} and {name} on "
                             f"{t.device}")
