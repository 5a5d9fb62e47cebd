"""Peak memory of a call, measured from the allocator's own trace: what ``memory_budget=`` promises is checked with
this, and bench/device.py reports it.

On CUDA the caching allocator's peak statistics answer directly; on other devices (the CPU) the PyTorch profiler's
memory trace (every allocation and free with its time, from C++, including tensors autograd saves) is summed in
time order. Both count tensor memory only: Python objects and the interpreter are not included.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

import torch

__all__ = ["peak_memory"]

R = TypeVar("R")


def peak_memory(fn: Callable[..., R], *args: Any, device: torch.device | str = "cpu", **kwargs: Any) -> tuple[R, int]:
    """Run ``fn(*args, **kwargs)`` and return ``(result, peak)``: the most bytes of tensor memory on ``device`` that
    were allocated during the call and not yet freed at some moment (0 when the call allocates nothing).

    Memory allocated before the call (the model's weights, the inputs) is not counted.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        result = fn(*args, **kwargs)
        torch.cuda.synchronize(device)
        return result, max(0, torch.cuda.max_memory_allocated(device) - start)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn(*args, **kwargs)
    kind = torch._C._autograd.DeviceType.CPU if device.type == "cpu" else None
    events = sorted(
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]" and (kind is None or e.device_type() == kind)
    )
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return result, peak
