"""A heatmap of a labelled matrix (generation attribution, head statistics), hover shows both labels and value."""

from __future__ import annotations

import math
from typing import Sequence

from torch import Tensor

from .html import View


def matrix_view(matrix: Tensor, rows: Sequence[str], cols: Sequence[str], *, row_title: str = "row",
                col_title: str = "column", diverging: bool = False, title: str = "attnscope · matrix",
                token_count: int | None = None, sections: Sequence[tuple[int, str]] = ()) -> View:
    """``matrix [rows, cols]`` as a heatmap. ``sections``: ``(first column, name)`` pairs in order (e.g. prompt |
    generated), drawn as rules between the column groups and named above them."""
    m = matrix.detach().float().cpu()
    if m.dim() != 2 or m.shape != (len(rows), len(cols)):
        raise ValueError(f"matrix of shape {tuple(m.shape)} does not match {len(rows)} row and {len(cols)} column labels")
    values = [v if math.isfinite(v) else 0.0 for v in m.reshape(-1).tolist()]
    max_abs = max((abs(v) for v in values), default=0.0)
    starts = [int(start) for start, _ in sections]
    if starts != sorted(starts) or any(not 0 <= x < len(cols) for x in starts):
        raise ValueError(f"sections must start at increasing columns in 0..{len(cols) - 1}, got {starts}")
    data = {"rows": [str(r) for r in rows], "cols": [str(c) for c in cols], "values": values, "max_abs": max_abs,
            "diverging": diverging, "row_title": row_title, "col_title": col_title,
            "sections": [[start, str(name)] for start, name in sections]}
    count = len(cols) if token_count is None else token_count
    return View("matrix", data, token_count=count, title=title, height=min(900, 120 + 24 * len(rows)))
