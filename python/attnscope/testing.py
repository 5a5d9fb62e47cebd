"""Assertions for pytest suites about what a model does. Failure messages show the measured values."""

from __future__ import annotations

from typing import Any


def assert_attention_matches_eager(model: Any, inputs: Any, *, atol: float = 1e-5, **capture_kwargs: Any) -> None:
    """Captured attention equals the model's own eager ``output_attentions`` on every non-padding query row."""
    import copy

    import torch

    from .api import as_model_inputs, capture_attention

    kwargs = as_model_inputs(inputs)
    res = capture_attention(model, kwargs, **capture_kwargs)
    eager = copy.deepcopy(model)
    eager.set_attn_implementation("eager")
    with torch.no_grad():
        out = eager(**kwargs, output_attentions=True)
    want = torch.stack([a.float() for a in out.attentions])[res.layers]
    mask = kwargs.get("attention_mask")
    rows = torch.ones(want.shape[1], want.shape[-2], dtype=torch.bool) if mask is None else mask.bool()[:, -want.shape[-2]:]
    rows = rows[None, :, None, :, None].expand_as(want)
    diff = (res.weights.float() - want).abs().masked_fill(~rows, 0)
    per_layer = diff.flatten(1).amax(1)
    if per_layer.max().item() > atol:
        detail = ", ".join(f"layer {layer}: {d:.2e}" for layer, d in zip(res.layers, per_layer.tolist()))
        raise AssertionError(f"captured attention differs from eager by more than {atol:g}: {detail}")


__all__ = ["assert_attention_matches_eager"]
