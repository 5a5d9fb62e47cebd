"""One forward under capture: the capture engine's entry for callers that hold a model and its inputs."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..adapters.seq2seq import with_decoder_inputs
from ..results import AttentionResult
from .fallback import eager_capture
from .session import capture

__all__ = ["capture_forward"]


def capture_forward(model: nn.Module, kwargs: dict[str, Tensor], *, grad: bool = False,
                    **options: Any) -> tuple[AttentionResult, Any]:
    """Run ``model(**kwargs)`` under :class:`capture` with ``options`` and return ``(result, outputs)``.

    Models whose attention does not go through the AttentionInterface fall back to eager ``output_attentions``
    (with a warning). ``grad=True`` keeps the forward's graph (when grad mode is on) so that a backward of the
    outputs fills ``result.grad``. Encoder-decoder models given no decoder inputs get the start token, as
    ``generate`` begins.
    """
    kwargs = with_decoder_inputs(model, kwargs)
    cap = capture(model, grad=grad, **options)
    cap.inputs = kwargs
    with torch.set_grad_enabled(grad and torch.is_grad_enabled()) if grad else torch.no_grad():
        with cap:
            outputs = model(**kwargs)
    if cap.calls == 0:
        result, outputs = eager_capture(model, kwargs, cap.layers, cap.options)
        cap.inputs = kwargs
        cap.attach_inputs(result)
        for stack in ("encoder", "decoder", "cross"):
            if getattr(result, stack) is not None:
                cap.attach_inputs(getattr(result, stack), stack)
    else:
        result = cap.result
    return result, outputs
