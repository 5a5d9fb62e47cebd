"""Output-interpretability views: the logit-lens grid and the direct-logit-attribution heatmap with bars."""

from __future__ import annotations

import math
from typing import Sequence

from .html import View
from .readable import readable_tokens


def _finite(v: float) -> float:
    return float(v) if math.isfinite(float(v)) else 0.0


def lens_view(*, layers: Sequence[str], positions: Sequence[str], cells: list[list[dict]], targets: Sequence[str],
              title: str = "attnscope · logit lens") -> View:
    """``cells[layer][position]``: ``top`` ``[[token, prob], ...]``, ``entropy``, ``kl``, ``target`` (one probability per
    target token) and ``rank``. Rows are layers (the last at the top), columns positions; colour = top-1 probability."""
    if len(cells) != len(layers) or any(len(row) != len(positions) for row in cells):
        raise ValueError(f"cells must be [{len(layers)} layers][{len(positions)} positions]")
    pieces = [str(t) for t in positions] + [str(t) for row in cells for c in row for t, _ in c["top"]] + \
        [str(t) for t in targets]
    text = dict(zip(pieces, readable_tokens(pieces)))  # token pieces as text (Ġcat -> ' cat'), one scheme for all
    clean = [[{"top": [[text[str(t)], _finite(p)] for t, p in c["top"]], "entropy": _finite(c["entropy"]),
               "kl": _finite(c["kl"]), "target": [_finite(v) for v in c["target"]], "rank": [int(r) for r in c["rank"]]}
              for c in row] for row in cells]
    data = {"layers": [str(x) for x in layers], "positions": [text[str(x)] for x in positions], "cells": clean,
            "targets": [text[str(t)] for t in targets]}
    return View("lens", data, token_count=len(positions), title=title,
                height=min(900, 260 + 26 * len(layers)))


def dla_view(*, heads: list[list[float]], layers: Sequence[str], bars: Sequence[tuple[str, float]], logit: float,
             delta: float, title: str = "attnscope · direct logit attribution") -> View:
    """Layers x heads heatmap of head contributions (diverging) plus bars for the embeddings, MLPs and biases."""
    n_heads = len(heads[0]) if heads else 0
    if len(heads) != len(layers) or any(len(row) != n_heads for row in heads):
        raise ValueError(f"heads must be [{len(layers)} layers][heads]")
    values = [_finite(v) for row in heads for v in row]
    bar_values = [_finite(v) for _, v in bars]
    data = {"layers": [str(x) for x in layers], "heads": [str(h) for h in range(n_heads)], "values": values,
            "max_abs": max([abs(v) for v in values + bar_values] or [0.0]),
            "bars": [[str(n), v] for (n, _), v in zip(bars, bar_values)], "logit": _finite(logit),
            "delta": _finite(delta)}
    return View("dla", data, token_count=len(values) + len(bars), title=title,
                height=min(900, 200 + 26 * len(layers) + 20 * len(bars)))
