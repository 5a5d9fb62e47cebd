"""Path patching between heads: the effect of a sender head on the metric through one receiver head's query, key or
value only (Wang et al. 2022, "Interpretability in the Wild"). The slow exact method, meant for organism-sized
models: two full forwards per (sender, receiver, input), none shared.

For a sender ``s`` and a receiver ``r`` reading input ``x`` (``"q"``, ``"k"`` or ``"v"``):

1. run the corrupted input with ``s``'s output taken from the clean run and every other head's output frozen to
   its corrupted value (MLPs and norms recompute), and record ``r``'s ``x``;
2. run the corrupted input with only ``r``'s ``x`` replaced by the recorded one, and read the metric.

Heads act through attnscope's AttentionInterface function (:mod:`attnscope.capturing.editors`): outputs before the
output projection, queries and keys after the position embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..adapters.sites import num_heads, num_layers
from ..attribution.scope import scoped_model
from ..capturing import capture
from ..results.patching import PatchingResult
from .corruption import embedding_noise
from .metrics import resolve_metric
from .outcome import patching_result
from .pairs import example_inputs, paired_inputs

__all__ = ["path_patching"]

_INPUTS = ("q", "k", "v")


class _PathEditor:
    """Records head outputs and q/k/v (``record``), freezes heads but the sender (``freeze``), or replaces one
    receiver input (``patch``)."""

    def __init__(self) -> None:
        self.mode = "record"
        self.outputs: dict[int, Tensor] = {}
        self.qkv: dict[int, tuple[Tensor, Tensor, Tensor]] = {}
        self.frozen: dict[int, Tensor] = {}
        self.sender: tuple[int, int, Tensor] | None = None  # layer, head, clean output [1, n, d_head]
        self.patch: tuple[int, int, int, Tensor] | None = None  # layer, input index, head index, value

    def edit_inputs(self, layer, stack, query, key, value):
        qkv = [query, key, value]
        if self.mode == "patch" and self.patch is not None and self.patch[0] == layer:
            _, which, head, v = self.patch
            t = qkv[which].clone()
            t[:, head] = v
            qkv[which] = t
        self.qkv[layer] = (qkv[0].detach(), qkv[1].detach(), qkv[2].detach())
        return qkv[0], qkv[1], qkv[2]

    def edit_output(self, layer, stack, output, q_start):
        if self.mode == "record":
            self.outputs[layer] = output.detach()
            return output
        if self.mode != "freeze":
            return output
        out = self.frozen[layer].clone()
        if self.sender is not None and self.sender[0] == layer:
            out[:, :, self.sender[1]] = self.sender[2]
        return out


def _heads(spec: Sequence[tuple[int, int]] | None, n_layers: int, n_heads: int, what: str) -> list[tuple[int, int]]:
    if spec is None:
        return [(l, h) for l in range(n_layers) for h in range(n_heads)]
    out = []
    for item in spec:
        if not (isinstance(item, tuple) and len(item) == 2 and all(isinstance(v, int) for v in item)):
            raise TypeError(f"{what} must be (layer, head) pairs, got {item!r}")
        layer, head = item
        if not 0 <= layer < n_layers:
            raise ValueError(f"{what}: layer {layer} out of range: the model has {n_layers} layers (0..{n_layers - 1})")
        if not 0 <= head < n_heads:
            raise ValueError(f"{what}: head {head} out of range: the model has {n_heads} heads (0..{n_heads - 1})")
        out.append((layer, head))
    if not out:
        raise ValueError(f"{what} is empty: name at least one (layer, head)")
    return out


def path_patching(
    model: nn.Module,
    clean: Any,
    corrupted: Any,
    *,
    metric: Any,
    senders: Sequence[tuple[int, int]] | None = None,
    receivers: Sequence[tuple[int, int]] | None = None,
    receiver_inputs: Sequence[str] = _INPUTS,
    tokenizer: Any = None,
) -> PatchingResult:
    """Path patching from each sender head to each later receiver head's query, key and value.

    Args:
        senders, receivers: ``(layer, head)`` pairs; None = every head. Pairs with the receiver not above the sender
            are NaN.
        receiver_inputs: any of ``"q"``, ``"k"``, ``"v"``. On grouped-query models a key/value head is shared by
            several query heads: patching ``"k"``/``"v"`` of one head is refused there.
        metric, clean, corrupted, tokenizer: as :func:`activation_patching`.

    Returns:
        PatchingResult with ``by="path"``: rows are senders (``"L0H3"``), columns receivers and inputs
        (``"L1H0.k"``); ``raw``/``normalized`` under the site ``"head_out"``.
    """
    n_layers, n_heads = num_layers(model), num_heads(model)
    send = _heads(senders, n_layers, n_heads, "senders")
    recv = _heads(receivers, n_layers, n_heads, "receivers")
    inputs = list(receiver_inputs)
    bad = [x for x in inputs if x not in _INPUTS]
    if bad or not inputs:
        raise ValueError(f"receiver_inputs must be a non-empty subset of {_INPUTS}, got {tuple(inputs)}")
    kv_heads = getattr(model.config, "num_key_value_heads", None) or n_heads
    if kv_heads != n_heads and any(x in ("k", "v") for x in inputs):
        raise ValueError(f"the model shares each key/value head among {n_heads // kv_heads} query heads "
                         "(grouped-query attention): patching one head's 'k' or 'v' would patch all of them; use "
                         "receiver_inputs=('q',)")
    resolved = resolve_metric(metric)
    pairs = paired_inputs(model, clean, corrupted, tokenizer)
    columns = [(l, h, x) for l, h in recv for x in inputs]
    raw = torch.full((len(pairs), len(send), len(columns)), float("nan"), dtype=torch.float64)
    clean_values, corrupted_values, forwards = [], [], 0
    described = resolved.describe()
    editor = _PathEditor()
    group = n_heads // kv_heads
    with scoped_model(model), capture(model, record=False, editors=[editor]), torch.no_grad():
        for b, pair in enumerate(pairs):
            editor.mode = "record"
            out = model(input_ids=pair.clean)
            clean_out = dict(editor.outputs)
            bound = resolved.bind(model, tokenizer, out, example_inputs(model, pair.clean))
            clean_values.append(float(bound(out, 1)[0]))
            described = bound.describe()

            def corrupted_metric() -> float:
                with embedding_noise(model, pair.noise):
                    return float(bound(model(input_ids=pair.corrupted), 1)[0])

            corrupted_values.append(corrupted_metric())
            editor.frozen = dict(editor.outputs)
            forwards += 2
            for si, (sl, sh) in enumerate(send):
                editor.mode, editor.sender = "freeze", (sl, sh, clean_out[sl][:, :, sh])
                corrupted_metric()
                recorded = dict(editor.qkv)
                forwards += 1
                for ci, (rl, rh, inp) in enumerate(columns):
                    if rl <= sl:
                        continue
                    which = _INPUTS.index(inp)
                    head = rh if which == 0 else rh // group
                    editor.mode, editor.patch = "patch", (rl, which, head, recorded[rl][which][:, head])
                    raw[b, si, ci] = corrupted_metric()
                    forwards += 1
            editor.mode, editor.sender, editor.patch = "record", None, None
    return patching_result({"head_out": raw}, clean_values, corrupted_values, method="path", by="path",
                           rows=[f"L{l}H{h}" for l, h in send], row_title="sender",
                           columns=[f"L{l}H{h}.{x}" for l, h, x in columns], column_title="receiver",
                           pairs=pairs, tokenizer=tokenizer, metric=described, forwards=forwards)
