"""Chunk sizes from a memory budget: one rule for every engine (gradient, perturbation, generation).

An engine runs its rows (interpolation points, coalitions, sequence copies) in chunks. The user gives rows per
chunk (``internal_batch_size`` / ``batch_size``) or "auto": then a chunk takes what fits the memory budget (by a
per-row estimate of what forward and backward keep alive), capped at a number of tokens per forward that each
engine sets from its measurements.
"""

from __future__ import annotations

import os

from torch import nn

# Gradient engine: "auto" chunks stop growing at this many tokens per forward. On CPU, MiniLM at L = 128 runs 4-row
# chunks within about 10 % of 32-row chunks (one thread), at an eighth of the activation memory; a fixed cap also
# keeps the peak independent of n_steps.
GRADIENT_MAX_TOKENS = 512
# Perturbation engine: forward-only rows could take larger chunks, but on CPU (MiniLM, one thread) 64-row chunks of
# 24 tokens ran ~15 % slower per row than 16- to 21-row chunks.
PERTURBATION_MAX_TOKENS = 512
# Generation engine: rows are sequence copies or vmapped grad vectors.
GENERATION_MAX_TOKENS = 8192
# Share of the available memory that the default budget takes.
DEFAULT_BUDGET_FRACTION = 0.25

__all__ = [
    "DEFAULT_BUDGET_FRACTION",
    "check_budget",
    "GENERATION_MAX_TOKENS",
    "GRADIENT_MAX_TOKENS",
    "PERTURBATION_MAX_TOKENS",
    "available_memory",
    "choose_chunk",
    "estimate_row_bytes",
    "progress_bar",
]


def available_memory() -> int:
    """Bytes of memory available now (MemAvailable on Linux; 4 GiB when unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30


# Attention implementations that never build [heads, seq, seq] probabilities (fused kernels that save O(seq) per head
# for the backward). Eager attention, and anything unknown, is counted with its probabilities.
FUSED_ATTENTION = ("sdpa", "flash_attention_2", "flash_attention_3", "flex_attention")


def estimate_row_bytes(model: nn.Module, seq: int, logits_per_token: int) -> int:
    """Bytes one row (one point) keeps alive through forward and backward, an upper estimate: activations saved per
    layer (hidden-sized tensors, the MLP, and the attention probabilities unless the model's attention is a fused
    kernel), plus the logits, in the wider of float32 and the model's dtype."""
    cfg = getattr(model, "config", None)
    hidden = int(getattr(cfg, "hidden_size", 0) or getattr(cfg, "n_embd", 0) or 768)
    layers = int(getattr(cfg, "num_hidden_layers", 0) or getattr(cfg, "n_layer", 0) or 12)
    heads = int(getattr(cfg, "num_attention_heads", 0) or getattr(cfg, "n_head", 0) or 12)
    inter = int(getattr(cfg, "intermediate_size", 0) or getattr(cfg, "n_inner", 0) or 4 * hidden)
    fused = getattr(cfg, "_attn_implementation", None) in FUSED_ATTENTION
    per_layer = seq * (12 * hidden + 3 * inter) + (0 if fused else 3 * heads * seq * seq)
    itemsize = max(4, next((p.element_size() for p in model.parameters()), 4))
    return itemsize * (layers * per_layer + 3 * seq * logits_per_token + 4 * seq * hidden)


def check_budget(memory_budget: int | None, model: nn.Module, seq: int, logits_per_token: int) -> None:
    """Refuse, before any forward, a ``memory_budget`` that cannot hold one row of ``seq`` tokens."""
    if memory_budget is None:
        return
    need = estimate_row_bytes(model, seq, logits_per_token)
    if need > memory_budget:
        raise ValueError(
            f"memory_budget={memory_budget} bytes cannot hold one row of {seq} tokens, which needs about {need} bytes "
            f"({need / 2**20:.1f} MiB) for this model; give memory_budget >= {need} or a shorter input"
        )


def choose_chunk(
    internal_batch_size: int | str,
    memory_budget: int | None,
    model: nn.Module,
    seq: int,
    logits_per_token: int,
    n_points: int | None,
    max_tokens: int = GRADIENT_MAX_TOKENS,
    balanced: bool = False,
) -> int:
    """Rows per forward: the user's int (at most what a given ``memory_budget`` holds), or under "auto" what fits the
    memory budget (capped at ``max_tokens`` tokens per forward and at ``n_points``, when given); ``balanced`` splits
    the points evenly, so that the last chunk is not a small remainder. A ``memory_budget`` that cannot hold one row
    is a ValueError (:func:`check_budget`)."""
    if n_points is None:
        n_points = 1 << 62
    check_budget(memory_budget, model, seq, logits_per_token)
    budget = memory_budget if memory_budget is not None else int(DEFAULT_BUDGET_FRACTION * available_memory())
    by_memory = budget // max(1, estimate_row_bytes(model, seq, logits_per_token))
    if internal_batch_size != "auto":
        # The user's rows, but never more than a given memory_budget holds.
        rows = max(1, min(int(internal_batch_size), max(1, n_points)))
        return rows if memory_budget is None else max(1, min(rows, by_memory))
    by_tokens = max(1, max_tokens // max(1, seq))
    cap = int(max(1, min(by_memory, by_tokens, max(1, n_points))))
    if not balanced:
        return cap
    n_chunks = -(-max(1, n_points) // cap)
    return -(-max(1, n_points) // n_chunks)


PROGRESS_DELAY_S = 2.0  # progress=None: a bar appears once the work has run this long


def progress_bar(total: int, desc: str, unit: str, progress: bool | None, show_from: int):
    """A tqdm bar (notebook-aware) over ``total`` units of work, never left on screen: shown at once when
    ``progress`` is True; when it is None, for work of at least ``show_from`` units that is still running after
    ``PROGRESS_DELAY_S`` seconds (short calls stay quiet, long ones say where they are)."""
    from tqdm.auto import tqdm

    show = total >= show_from if progress is None else bool(progress)
    delay = PROGRESS_DELAY_S if progress is None else 0.0
    return tqdm(total=total, desc=f"attnscope {desc}", unit=unit, disable=not show, leave=False, delay=delay)
