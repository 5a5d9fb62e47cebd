"""Finding the modules that call the attention function, and naming their stack and layer."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

_CROSS_MARKERS = ("encoder_attn", "crossattention", "cross_attn", "encdecattention")


@dataclass(frozen=True)
class AttentionSlot:
    """Where one attention module sits: its stack ("main", or "encoder"/"decoder"/"cross") and layer index."""

    stack: str
    layer: int
    name: str


def _is_attention(module: nn.Module) -> bool:
    return type(module).__name__.lower().endswith("attention")


def find_attention_modules(model: nn.Module) -> dict[nn.Module, AttentionSlot]:
    """The innermost ``*Attention`` modules of ``model`` (those that call the attention function), in order.

    Encoder-only and decoder-only models have one stack, "main". Encoder-decoder models have "encoder",
    "decoder" (self-attention) and "cross". Layer indices count within a stack.
    """
    # named_modules() lists a module's descendants right after it, so an attention module holds another one exactly
    # when the next attention module in that order is below it (one pass; a capture runs this on every call).
    candidates = [(name, module) for name, module in model.named_modules() if _is_attention(module)]
    found = [
        (name, module) for (name, module), after in zip(candidates, [*candidates[1:], None])
        if after is None or not (name == "" or after[0].startswith(name + "."))
    ]
    kinds = []
    for name, _ in found:
        lowered = name.lower()
        if any(marker in lowered for marker in _CROSS_MARKERS):
            kinds.append("cross")
        elif "decoder" in lowered:
            kinds.append("decoder")
        elif "encoder" in lowered:
            kinds.append("encoder")
        else:
            kinds.append("main")
    if "decoder" not in kinds or "encoder" not in kinds:
        kinds = ["cross" if kind == "cross" else "main" for kind in kinds]
    counters: dict[str, int] = {}
    slots = {}
    for (name, module), kind in zip(found, kinds):
        slots[module] = AttentionSlot(kind, counters.get(kind, 0), name)
        counters[kind] = counters.get(kind, 0) + 1
    return slots
