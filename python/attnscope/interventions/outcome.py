"""Raw metric grids to a :class:`PatchingResult`: normalisation to [corrupted = 0, clean = 1], undefined when equal."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..results.patching import PatchingResult
from .pairs import tokens_of

__all__ = ["UNDEFINED_TOLERANCE", "patching_result"]

# Clean and corrupted metrics closer than this (relative to their size) leave the normalisation undefined.
UNDEFINED_TOLERANCE = 1e-6


def _undefined(clean: float, corrupted: float) -> bool:
    return abs(clean - corrupted) <= UNDEFINED_TOLERANCE * max(1.0, abs(clean), abs(corrupted))


def patching_result(raw: dict[str, Tensor], clean: list[float], corrupted: list[float], *, method: str, by: str,
                    rows: list[str], row_title: str, columns: list[str], column_title: str, pairs: list,
                    tokenizer: Any, metric: str, forwards: int) -> PatchingResult:
    """``raw``: ``{site: [batch, row, column]}`` float64 (NaN where a column does not exist for an example)."""
    c = torch.tensor(clean, dtype=torch.float64)
    k = torch.tensor(corrupted, dtype=torch.float64)
    undefined = [_undefined(a, b) for a, b in zip(clean, corrupted)]
    denom = torch.where(torch.tensor(undefined), torch.full_like(c, math.nan), c - k)
    normalized = {site: (g - k[:, None, None]) / denom[:, None, None] for site, g in raw.items()}
    note = ""
    if any(undefined):
        which = [i for i, u in enumerate(undefined) if u]
        note = (f"normalisation undefined for example(s) {which}: the clean and corrupted runs give the same metric "
                f"({', '.join(f'{clean[i]:.6g}' for i in which)}), so no patch can recover a difference; read the "
                "raw values")
    return PatchingResult(
        raw=raw, normalized=normalized, clean_metric=c, corrupted_metric=k, method=method, by=by, rows=rows,
        row_title=row_title, columns=columns, column_title=column_title,
        tokens=[tokens_of(tokenizer, p.clean) for p in pairs], corrupted_tokens=[tokens_of(tokenizer, p.corrupted) for p in pairs],
        metric=metric, undefined=undefined, note=note, forwards=forwards)
